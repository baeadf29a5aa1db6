package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgateway/mcp-gateway/config"
	"github.com/mcpgateway/mcp-gateway/token"
)

// cmdPorts prints n free loopback TCP ports, one a line. All listeners are
// held until every port is chosen so the n are distinct.
func cmdPorts(args []string) error {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > 32 {
			return errors.New("want a count from 1 to 32")
		}
		n = v
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// cmdMint signs an access token with the gateway's own ring (same config
// file, same keys) for sub at <public>/<agent>/mcp, exactly as the token
// endpoint would. -bad-signature signs with a different secret under the
// same kid: a token that parses but must fail verification.
func cmdMint(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the gateway's config file (MCPGW_* variables apply)")
	sub := fs.String("sub", "alice", "subject (user)")
	agent := fs.String("agent", "demo", "agent the audience names")
	scope := fs.String("scope", "mcp", "scope claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	bad := fs.Bool("bad-signature", false, "sign with a wrong secret under the right kid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, false)
	if err != nil {
		return err
	}
	secrets, err := cfg.Secrets()
	if err != nil {
		return err
	}
	key := token.Key{ID: cfg.SigningKeys[0].ID, Secret: secrets[0]}
	if *bad {
		key.Secret = []byte(token.Random(32))
	}
	ring, err := token.NewRing(cfg.PublicURL, []token.Key{key})
	if err != nil {
		return err
	}
	now := time.Now()
	raw, err := ring.Mint(&token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   *sub,
			Audience:  jwt.ClaimStrings{cfg.PublicURL + "/" + *agent + "/mcp"},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(*ttl)),
			ID:        token.Random(16),
		},
		ClientID: "bench-client",
		Scope:    *scope,
	})
	if err != nil {
		return err
	}
	fmt.Println(raw)
	return nil
}
