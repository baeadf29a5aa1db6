package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mcpgateway/mcp-gateway/assertion"
	"github.com/mcpgateway/mcp-gateway/cmd/mcp-gateway/cli"
)

// runKeys is `mcp-gateway keys`; the API-key logic lives in package cli,
// gen-assertion works locally.
func runKeys(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "gen-assertion" {
		return runGenAssertion(args[1:], stdout)
	}
	return cli.RunKeys(ctx, args, stdout)
}

// runGenAssertion writes a new identity-assertion key (ES256, PKCS #8 PEM,
// mode 0600) for config assertion_keys, refusing to overwrite a file.
func runGenAssertion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys gen-assertion", flag.ContinueOnError)
	out := fs.String("out", "", "file to write the private key to (required; never overwritten)")
	id := fs.String("id", "a-"+time.Now().UTC().Format("20060102"), "the key id (kid) to configure it under")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mcp-gateway keys gen-assertion --out FILE [--id KID]\n\nWrite a new ES256 key for the x-mcp-identity assertion (config assertion_keys).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--out FILE is required")
	}
	k, err := assertion.GenerateKey()
	if err != nil {
		return err
	}
	pemBytes, err := assertion.MarshalKey(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	pub, _ := json.Marshal(assertion.PublicJWK(assertion.Key{ID: *id, Private: k}))
	fmt.Fprintf(stdout, "Wrote %s.\n\nPrepend it to the config (the first key signs; keep the old one listed until agents have the new set):\n\n  assertion_keys:\n    - {id: %s, private_key_file: %s}\n\nPublic key, as /.well-known/jwks.json will publish it:\n  %s\n", *out, *id, *out, pub)
	return nil
}
