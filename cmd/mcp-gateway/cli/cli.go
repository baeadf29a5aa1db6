package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/mcpgateway/mcp-gateway/admin"
	"github.com/mcpgateway/mcp-gateway/store"
)

// Defaults and environment of the CLI.
const (
	DefaultAdminURL = "http://127.0.0.1:9090"
	EnvAdminURL     = "MCPGW_ADMIN_URL"
	EnvAdminToken   = "MCPGW_ADMIN_TOKEN"
)

// cli carries the flags every admin subcommand shares.
type cli struct {
	name     string // "agents", "keys", "clients"
	adminURL string
	token    string
	json     bool
	stdout   io.Writer
}

// register adds the shared flags to fs; called for the group and again for
// the subcommand so they may come before or after the subcommand name.
// The token's flag default stays empty so -h never prints it.
func (c *cli) register(fs *flag.FlagSet) {
	fs.StringVar(&c.adminURL, "admin-url", c.adminURL, "admin listener URL (env "+EnvAdminURL+", default "+DefaultAdminURL+")")
	fs.StringVar(&c.token, "admin-token", c.token, "admin bearer token (env "+EnvAdminToken+")")
	fs.BoolVar(&c.json, "json", c.json, "print the API's raw JSON")
}

func (c *cli) client() (*admin.Client, error) {
	if c.adminURL == "" {
		c.adminURL = os.Getenv(EnvAdminURL)
	}
	if c.adminURL == "" {
		c.adminURL = DefaultAdminURL
	}
	if c.token == "" {
		c.token = os.Getenv(EnvAdminToken)
	}
	if c.token == "" {
		return nil, fmt.Errorf("no admin token: set --admin-token or %s", EnvAdminToken)
	}
	return admin.NewClient(c.adminURL, c.token), nil
}

type subcommand struct {
	usage string // arguments after the subcommand name
	help  string
	flags func(fs *flag.FlagSet) // subcommand-specific flags
	run   func(ctx context.Context, pos []string) error
}

// dispatch parses the group's flags, picks the subcommand and runs it.
// -h prints usage to stdout and succeeds. Errors name the subcommand but
// not the group: main prefixes "mcp-gateway <group>:".
func (c *cli) dispatch(ctx context.Context, args []string, subs map[string]*subcommand, order []string) error {
	usage := func() {
		fmt.Fprintf(c.stdout, "Usage: mcp-gateway %s <command> [flags]\n\nCommands:\n", c.name)
		for _, n := range order {
			fmt.Fprintf(c.stdout, "  %-8s %s\n", n, subs[n].help)
		}
		fmt.Fprintf(c.stdout, "\nShared flags: --admin-url (env %s, default %s), --admin-token (env %s), --json\n", EnvAdminURL, DefaultAdminURL, EnvAdminToken)
		fmt.Fprintf(c.stdout, "Run 'mcp-gateway %s <command> -h' for a command's flags.\n", c.name)
	}
	top := flag.NewFlagSet(c.name, flag.ContinueOnError)
	top.SetOutput(io.Discard)
	c.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil
		}
		return fmt.Errorf("%w (see 'mcp-gateway %s -h')", err, c.name)
	}
	rest := top.Args()
	if len(rest) == 0 {
		usage()
		return fmt.Errorf("missing command (%s)", strings.Join(order, ", "))
	}
	sub, ok := subs[rest[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want %s)", rest[0], strings.Join(order, ", "))
	}
	full := c.name + " " + rest[0]
	fs := flag.NewFlagSet(full, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs)
	if sub.flags != nil {
		sub.flags(fs)
	}
	pos, err := parseInterspersed(fs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stdout, "Usage: mcp-gateway %s %s\n\n%s\n\nFlags:\n", full, sub.usage, sub.help)
			fs.SetOutput(c.stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%s: %w (see 'mcp-gateway %s -h')", rest[0], err, full)
	}
	if err := sub.run(ctx, pos); err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	return nil
}

// parseInterspersed lets flags follow positional arguments
// ("keys revoke ID --json"); everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneID takes the id from --id or the single positional argument.
func oneID(flagID string, pos []string) (string, error) {
	switch {
	case len(pos) > 1:
		return "", fmt.Errorf("unexpected arguments %q", pos[1:])
	case len(pos) == 1 && flagID != "" && pos[0] != flagID:
		return "", errors.New("id given twice (argument and --id)")
	case len(pos) == 1:
		return pos[0], nil
	case flagID != "":
		return flagID, nil
	}
	return "", errors.New("an id is required")
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q", pos)
	}
	return nil
}

// onItem sends method to one item of collection, named by the --id flag or
// the first argument, and decodes the answer into out (nil: ignored). done
// is true when --json printed the answer as it came: nothing is left to print.
func (c *cli) onItem(ctx context.Context, method, collection, flagID string, pos []string, out any) (id string, done bool, err error) {
	if id, err = oneID(flagID, pos); err != nil {
		return "", false, err
	}
	p, err := admin.ItemPath(collection, id)
	if err != nil {
		return "", false, err
	}
	raw, err := c.do(ctx, method, p, nil, out)
	if err != nil {
		return "", false, err
	}
	if c.json {
		return id, true, c.printJSON(raw)
	}
	return id, false, nil
}

// printJSON writes an API answer indented.
func (c *cli) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := c.stdout.Write(buf.Bytes())
	return err
}

func (c *cli) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	raw, err := cl.Do(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return raw, nil
}

// RunAgents is `mcp-gateway agents create|list|get|delete`.
func RunAgents(ctx context.Context, args []string, stdout io.Writer) error {
	c := &cli{name: "agents", stdout: stdout}
	var req admin.AgentRequest
	var users, scopes, id, rules string
	var ua store.UpstreamAuth
	var limits store.Limits
	subs := map[string]*subcommand{
		"create": {
			usage: "--id ID --owner USER [--name NAME] [--upstream URL] [--users a,b] [--scopes s1,s2] [--rules JSON] [--limit-per-user N] [--limit-per-tool N]\n       [--upstream-auth-header H [--upstream-auth-prefix P] --upstream-secret-file NAME | --upstream-secret-env VAR]",
			help:  "Create an agent reachable at /<id>/mcp.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&req.ID, "id", "", "agent id: 1–128 of [A-Za-z0-9._-] (or the first argument)")
				fs.StringVar(&req.Owner, "owner", "", "user id of the owner (required)")
				fs.StringVar(&req.Name, "name", "", "display name")
				fs.StringVar(&req.Upstream, "upstream", "", "MCP server URL (http or https)")
				fs.StringVar(&users, "users", "", "comma-separated users granted access besides the owner")
				fs.StringVar(&scopes, "scopes", "", "comma-separated allowed scopes (default: the gateway's)")
				fs.StringVar(&ua.Header, "upstream-auth-header", "", "a header the gateway adds for this agent, e.g. authorization")
				fs.StringVar(&ua.Prefix, "upstream-auth-prefix", "", `put before the secret, e.g. "Bearer "`)
				fs.StringVar(&ua.SecretFile, "upstream-secret-file", "", "the secret's file name in the gateway's upstream_secrets.dir")
				fs.StringVar(&ua.SecretEnv, "upstream-secret-env", "", "or the gateway's environment variable "+store.UpstreamSecretEnvPrefix+"…")
				fs.StringVar(&rules, "rules", "", `tool policy as JSON, e.g. '[{"method":"tools/call","target":"admin_*","scopes":["mcp:admin"]}]'`)
				fs.IntVar(&limits.PerUser, "limit-per-user", 0, "requests per minute per user (0: none)")
				fs.IntVar(&limits.PerTool, "limit-per-tool", 0, "tools/call per minute per user and tool (0: none)")
			},
			run: func(ctx context.Context, pos []string) error {
				var err error
				if req.ID, err = oneID(req.ID, pos); err != nil {
					return err
				}
				if rules != "" {
					if err := json.Unmarshal([]byte(rules), &req.Rules); err != nil {
						return fmt.Errorf("--rules: want a JSON list of rules: %w", err)
					}
				}
				if limits != (store.Limits{}) {
					req.Limits = &limits
				}
				req.Users, req.Scopes = splitList(users), splitList(scopes)
				if ua != (store.UpstreamAuth{}) {
					req.UpstreamAuth = &ua
				}
				var a store.Agent
				raw, err := c.do(ctx, "POST", admin.PathAgents, req, &a)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				fmt.Fprintf(stdout, "Created agent %s.\n", clean(a.ID))
				if err := printAgent(stdout, &a); err != nil {
					return err
				}
				return printRoute(stdout, raw)
			},
		},
		"list": {
			usage: "",
			help:  "List agents (static ones from the config file and those created here).",
			run: func(ctx context.Context, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				var l admin.AgentList
				raw, err := c.do(ctx, "GET", admin.PathAgents, nil, &l)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tOWNER\tUSERS\tUPSTREAM\tSCOPES\tSOURCE")
				for _, a := range l.Agents {
					src := "api"
					if a.Static {
						src = "config"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(a.ID), orDash(a.Name), clean(a.Owner),
						orDash(strings.Join(a.Users, ",")), orDash(a.Upstream), orDash(strings.Join(a.Scopes, ",")), src)
				}
				return tw.Flush()
			},
		},
		"get": {
			usage: "ID",
			help:  "Show one agent.",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "agent id (or the first argument)") },
			run: func(ctx context.Context, pos []string) error {
				var a store.Agent
				_, done, err := c.onItem(ctx, "GET", admin.PathAgents, id, pos, &a)
				if done || err != nil {
					return err
				}
				return printAgent(stdout, &a)
			},
		},
		"delete": {
			usage: "ID",
			help:  "Delete an agent created through the API and revoke its agent keys.",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "agent id (or the first argument)") },
			run: func(ctx context.Context, pos []string) error {
				var out struct {
					KeysRevoked int `json:"keys_revoked"`
				}
				id, done, err := c.onItem(ctx, "DELETE", admin.PathAgents, id, pos, &out)
				if done || err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Deleted agent %s (%d agent key(s) revoked).\n", clean(id), out.KeysRevoked)
				return nil
			},
		},
	}
	return c.dispatch(ctx, args, subs, []string{"create", "list", "get", "delete"})
}

func printAgent(w io.Writer, a *store.Agent) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	src := "api"
	if a.Static {
		src = "config file"
	}
	fmt.Fprintf(tw, "id:\t%s\n", clean(a.ID))
	fmt.Fprintf(tw, "name:\t%s\n", orDash(a.Name))
	fmt.Fprintf(tw, "owner:\t%s\n", clean(a.Owner))
	fmt.Fprintf(tw, "users:\t%s\n", orDash(strings.Join(a.Users, ", ")))
	fmt.Fprintf(tw, "upstream:\t%s\n", orDash(a.Upstream))
	fmt.Fprintf(tw, "scopes:\t%s\n", orDash(strings.Join(a.Scopes, " ")))
	for i, r := range a.Rules { // the tool policy, one line per rule
		fmt.Fprintf(tw, "rule %d:\t%s %s → scopes %s%s%s%s\n", i+1, clean(r.Method), orDash(r.Target), orDash(strings.Join(r.Scopes, " ")),
			listNote(" users", r.Users), listNote(" groups", r.Groups), listNote(" credentials", r.Credentials))
	}
	if l := a.Limits; l != nil {
		fmt.Fprintf(tw, "limits:\t%d/min per user, %d/min per user and tool\n", l.PerUser, l.PerTool)
	}
	if u := a.UpstreamAuth; u != nil { // the reference; the gateway never has the secret to show
		ref := "file " + u.SecretFile
		if u.SecretEnv != "" {
			ref = "env " + u.SecretEnv
		}
		fmt.Fprintf(tw, "upstream auth:\t%s: %s<secret from %s>\n", clean(u.Header), clean(u.Prefix), clean(ref))
	}
	fmt.Fprintf(tw, "source:\t%s\n", src)
	fmt.Fprintf(tw, "created:\t%s\n", when(a.Created, "-"))
	return tw.Flush()
}

// RunKeys is `mcp-gateway keys create|list|revoke`.
func RunKeys(ctx context.Context, args []string, stdout io.Writer) error {
	c := &cli{name: "keys", stdout: stdout}
	var req admin.KeyRequest
	var scopes, expiresIn, id, agent, user string
	subs := map[string]*subcommand{
		"create": {
			usage: "--kind agent --agent AGENT [--user USER] [--name NAME] [--scopes s1,s2] [--expires-in 720h|90d]\n       mcp-gateway keys create --kind user --user USER [--name NAME] [--scopes s1,s2] [--expires-in 90d]",
			help:  "Create an API key: an agent key (bak_…, one agent) or a user key (oag_…, every agent the user may use).\nThe key is printed once and never shown again.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&req.Kind, "kind", "", `"agent" or "user" (default: agent when --agent is set, else user)`)
				fs.StringVar(&req.Agent, "agent", "", "agent id (kind agent)")
				fs.StringVar(&req.User, "user", "", "user id (kind user; for kind agent the default is the agent's owner)")
				fs.StringVar(&req.Name, "name", "", "a name to recognise the key by")
				fs.StringVar(&scopes, "scopes", "", "comma-separated scopes the key is restricted to (default: the agent's base scopes); the tool policy's rules apply to them")
				fs.StringVar(&scopes, "scope", "", "same as --scopes")
				fs.StringVar(&expiresIn, "expires-in", "", "lifetime, e.g. 720h or 90d (default: never expires)")
			},
			run: func(ctx context.Context, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				if req.Kind == "" {
					switch {
					case req.Agent != "":
						req.Kind = string(store.KeyAgent)
					case req.User != "":
						req.Kind = string(store.KeyUser)
					default:
						return errors.New("--kind agent --agent ID, or --kind user --user ID, is required")
					}
				}
				secs, err := parseLifetime(expiresIn)
				if err != nil {
					return fmt.Errorf("--expires-in: %w", err)
				}
				req.ExpiresIn, req.Scopes = secs, splitList(scopes)
				var k admin.CreatedKey
				raw, err := c.do(ctx, "POST", admin.PathKeys, req, &k)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				what := "user key for user " + clean(k.User)
				if k.Kind == store.KeyAgent {
					what = fmt.Sprintf("agent key for agent %s (user %s)", clean(k.Agent), clean(k.User))
				}
				fmt.Fprintf(stdout, "Created %s.\n", what)
				fmt.Fprintf(stdout, "id:       %s\nexpires:  %s\n\n", clean(k.ID), when(k.ExpiresAt, "never"))
				fmt.Fprintf(stdout, "  %s\n\n", k.Key)
				fmt.Fprintln(stdout, "Save this key now: it is not shown again. Send it as 'Authorization: Bearer <key>'.")
				return nil
			},
		},
		"list": {
			usage: "[--agent AGENT] [--user USER]",
			help:  "List API keys (never the keys themselves).",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&agent, "agent", "", "only keys of this agent")
				fs.StringVar(&user, "user", "", "only keys of this user")
			},
			run: func(ctx context.Context, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				q := url.Values{}
				if agent != "" {
					q.Set("agent", agent)
				}
				if user != "" {
					q.Set("user", user)
				}
				p := admin.PathKeys
				if len(q) > 0 {
					p += "?" + q.Encode()
				}
				var l admin.KeyList
				raw, err := c.do(ctx, "GET", p, nil, &l)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tAGENT\tUSER\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATUS")
				for _, k := range l.Keys {
					status := "active"
					if k.Revoked {
						status = "revoked"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(k.ID), clean(string(k.Kind)), orDash(k.Agent), orDash(k.User),
						orDash(k.Name), orDash(strings.Join(k.Scopes, ",")), when(k.CreatedAt, "-"), when(k.ExpiresAt, "never"), when(k.LastUsed, "-"), status)
				}
				return tw.Flush()
			},
		},
		"revoke": {
			usage: "ID",
			help:  "Revoke an API key (takes effect on every replica at once).",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "key id (or the first argument)") },
			run: func(ctx context.Context, pos []string) error {
				var k store.APIKey
				_, done, err := c.onItem(ctx, "DELETE", admin.PathKeys, id, pos, &k)
				if done || err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Revoked key %s.\n", clean(k.ID))
				return nil
			},
		},
	}
	return c.dispatch(ctx, args, subs, []string{"create", "list", "revoke"})
}

// RunClients is `mcp-gateway clients list|delete`.
func RunClients(ctx context.Context, args []string, stdout io.Writer) error {
	c := &cli{name: "clients", stdout: stdout}
	var id string
	subs := map[string]*subcommand{
		"list": {
			usage: "",
			help:  "List registered OAuth clients.",
			run: func(ctx context.Context, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				var l admin.ClientList
				raw, err := c.do(ctx, "GET", admin.PathClients, nil, &l)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(raw)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT ID\tNAME\tREDIRECT URIS\tREGISTERED\tFROM IP\tEXPIRES IF IDLE")
				for _, cl := range l.Clients {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(cl.ID), orDash(cl.Name), orDash(strings.Join(cl.RedirectURIs, " ")),
						when(cl.CreatedAt, "-"), orDash(cl.RegisteredIP), when(cl.ExpiresAt, "never"))
				}
				return tw.Flush()
			},
		},
		"delete": {
			usage: "CLIENT_ID",
			help:  "Delete a registered OAuth client.",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&id, "id", "", "client id (or the first argument)") },
			run: func(ctx context.Context, pos []string) error {
				id, done, err := c.onItem(ctx, "DELETE", admin.PathClients, id, pos, nil)
				if done || err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Deleted client %s.\n", clean(id))
				return nil
			},
		},
	}
	return c.dispatch(ctx, args, subs, []string{"list", "delete"})
}

// RunHealthcheck is `mcp-gateway healthcheck [--url URL]`: a probe for
// images without a shell or curl. Non-200 (or no answer) is an error.
func RunHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	u := fs.String("url", "http://127.0.0.1:9090/healthz", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: mcp-gateway healthcheck [--url URL] [--timeout 3s]\n\nExits non-zero unless URL answers 200.\n\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", *u, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// parseLifetime turns "720h", "90d" or "" (never) into whole seconds.
func parseLifetime(s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("%q: want a positive number of days like 90d", s)
		}
		if days > int(admin.MaxKeyLifetime/(24*time.Hour)) {
			return 0, fmt.Errorf("%q: at most %d days", s, int(admin.MaxKeyLifetime/(24*time.Hour)))
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a duration like 720h or 90d", s)
		}
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, fmt.Errorf("%q: want a positive whole number of seconds", s)
	}
	return int64(d / time.Second), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// clean keeps terminal control sequences, tabs and bidi overrides (from e.g.
// a registered client_name) out of the CLI's output.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func when(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}

// printRoute prints the answer's route note: whether Envoy routes the agent.
func printRoute(w io.Writer, raw []byte) error {
	var ans struct {
		Route *admin.RouteInfo `json:"route"`
	}
	if json.Unmarshal(raw, &ans) != nil || ans.Route == nil {
		return nil
	}
	if ans.Route.Routed {
		_, err := fmt.Fprintf(w, "route:\tEnvoy routes %s to the upstream (xDS, within a second)\n", clean(ans.Route.Path))
		return err
	}
	_, err := fmt.Fprintf(w, "route:\tnot routed: %s\n", clean(ans.Route.Note))
	return err
}

// listNote is " name a,b" for a non-empty list, "" otherwise.
func listNote(name string, l []string) string {
	if len(l) == 0 {
		return ""
	}
	return name + " " + clean(strings.Join(l, ","))
}
