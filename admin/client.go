package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
)

// ClientTimeout bounds every call of a Client made by NewClient.
const ClientTimeout = 10 * time.Second

// maxResponseBytes caps what the Client reads from the admin API.
const maxResponseBytes = 32 << 20

// Client calls the admin API. The CLI and tests share it.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:9090, no trailing slash needed
	Token   string // admin bearer token
	HTTP    *http.Client
}

// NewClient returns a Client with a ClientTimeout HTTP client.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: baseURL, Token: token, HTTP: &http.Client{Timeout: ClientTimeout}}
}

// APIError is a non-2xx answer of the admin API.
type APIError struct {
	Status  int
	Message string // the API's "error" field, or the raw body
}

func (e *APIError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Do sends method path with in as a JSON body (nil: no body) and returns the
// raw answer of a 2xx response; any other status is an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, in any) ([]byte, error) {
	base, err := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("admin URL %q: want an absolute http(s) URL", c.BaseURL)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("admin API: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: ClientTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("admin API: read answer: %w", err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("admin API: answer larger than %d bytes", maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb ErrorBody
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return nil, &APIError{Status: resp.StatusCode, Message: msg}
	}
	return b, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	b, err := c.Do(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Paths of the admin API, for Do.
const (
	PathAgents  = "/admin/v1/agents"
	PathKeys    = "/admin/v1/keys"
	PathClients = "/admin/v1/clients"
)

// ItemPath returns the admin API path of one item of collection (PathAgents,
// PathKeys, PathClients), the id path-escaped; an empty id is an error.
func ItemPath(collection, id string) (string, error) {
	if id == "" {
		return "", errors.New("an id is required")
	}
	return collection + "/" + url.PathEscape(id), nil
}

func (c *Client) CreateAgent(ctx context.Context, req AgentRequest) (*store.Agent, error) {
	var a store.Agent
	if err := c.call(ctx, http.MethodPost, PathAgents, req, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (c *Client) ListAgents(ctx context.Context) ([]*store.Agent, error) {
	var l AgentList
	if err := c.call(ctx, http.MethodGet, PathAgents, nil, &l); err != nil {
		return nil, err
	}
	return l.Agents, nil
}

func (c *Client) GetAgent(ctx context.Context, id string) (*store.Agent, error) {
	p, err := ItemPath(PathAgents, id)
	if err != nil {
		return nil, err
	}
	var a store.Agent
	if err := c.call(ctx, http.MethodGet, p, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (c *Client) DeleteAgent(ctx context.Context, id string) error {
	p, err := ItemPath(PathAgents, id)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, p, nil, nil)
}

// CreateKey returns the record and the key, which the API never shows again.
func (c *Client) CreateKey(ctx context.Context, req KeyRequest) (*CreatedKey, error) {
	var k CreatedKey
	if err := c.call(ctx, http.MethodPost, PathKeys, req, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

func (c *Client) ListKeys(ctx context.Context) ([]*store.APIKey, error) {
	var l KeyList
	if err := c.call(ctx, http.MethodGet, PathKeys, nil, &l); err != nil {
		return nil, err
	}
	return l.Keys, nil
}

func (c *Client) RevokeKey(ctx context.Context, id string) (*store.APIKey, error) {
	p, err := ItemPath(PathKeys, id)
	if err != nil {
		return nil, err
	}
	var k store.APIKey
	if err := c.call(ctx, http.MethodDelete, p, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

func (c *Client) ListClients(ctx context.Context) ([]*store.Client, error) {
	var l ClientList
	if err := c.call(ctx, http.MethodGet, PathClients, nil, &l); err != nil {
		return nil, err
	}
	return l.Clients, nil
}

func (c *Client) DeleteClient(ctx context.Context, id string) error {
	p, err := ItemPath(PathClients, id)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, p, nil, nil)
}
