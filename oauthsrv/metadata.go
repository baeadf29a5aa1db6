package oauthsrv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgateway/mcp-gateway/store"
)

// asMetadata is the RFC 8414 document.
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	AuthorizationResponseIssSupported bool     `json:"authorization_response_iss_parameter_supported"`
	// CIMDSupported: URL client_ids are Client ID Metadata Documents.
	CIMDSupported bool `json:"client_id_metadata_document_supported,omitempty"`
	// Introspection (RFC 7662), for resource servers holding an agent key.
	IntrospectionEndpoint            string   `json:"introspection_endpoint,omitempty"`
	IntrospectionEndpointAuthMethods []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
}

// prmDocument is the RFC 9728 protected resource metadata.
type prmDocument struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

func (s *Server) buildMetadata() error {
	var err error
	s.asMeta, err = json.Marshal(asMetadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.pathURL("/oauth/authorize"),
		TokenEndpoint:                     s.pathURL("/oauth/token"),
		RegistrationEndpoint:              s.pathURL("/oauth/register"),
		RevocationEndpoint:                s.pathURL("/oauth/revoke"),
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{grantCode, grantRefresh},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"none"},
		RevocationEndpointAuthMethods:     []string{"none"},
		ScopesSupported:                   s.scopes,
		AuthorizationResponseIssSupported: true,
		CIMDSupported:                     s.cfg.CIMD.Enabled,
		IntrospectionEndpoint:             s.introspectionURL(),
		IntrospectionEndpointAuthMethods:  s.introspectionAuthMethods(),
	})
	if err != nil {
		return fmt.Errorf("oauthsrv: metadata: %w", err)
	}
	s.prmRoot, err = json.Marshal(s.prm(s.issuer, s.baseScopes, ""))
	if err != nil {
		return fmt.Errorf("oauthsrv: metadata: %w", err)
	}
	return nil
}

func (s *Server) prm(resource string, scopes []string, name string) prmDocument {
	return prmDocument{
		Resource:               resource,
		AuthorizationServers:   []string{s.issuer},
		ScopesSupported:        scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           name,
	}
}

func writeRawJSON(w http.ResponseWriter, r *http.Request, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

// handleASMetadata serves RFC 8414 metadata at the well-known path and at any
// path below it: the issuer's own path when public_url has one (RFC 8414
// §3.1, /.well-known/oauth-authorization-server/gw), and whatever clients
// that append the MCP endpoint's path ask for (the issuer tells them apart).
func (s *Server) handleASMetadata(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		writeMethodNotAllowed(w, "GET, HEAD, OPTIONS")
		return
	}
	writeRawJSON(w, r, s.asMeta)
}

// handlePRM serves the protected resource metadata of the gateway-wide
// resource and of /<agent>/mcp and /<agent>/mcp/, each at its RFC 9728 §3.1
// URL (resource.Base.ParseMetadata) and naming its resource byte for byte.
func (s *Server) handlePRM(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		writeMethodNotAllowed(w, "GET, HEAD, OPTIONS")
		return
	}
	id, slash, ok := s.res.ParseMetadata(r.URL.Path)
	if !ok || r.URL.RawPath != "" {
		writeOAuthError(w, http.StatusNotFound, "not_found", "no protected resource at this path")
		return
	}
	if id == "" {
		writeRawJSON(w, r, s.prmRoot)
		return
	}
	scopes, name := s.scopes, ""
	if s.agents != nil {
		a, err := s.agents.GetAgent(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			writeOAuthError(w, http.StatusNotFound, "not_found", "no such agent")
			return
		}
		if err != nil {
			s.storeError(r.Context(), "get_agent", err)
			writeUnavailable(w)
			return
		}
		scopes = a.BaseScopes(s.baseScopes) // rule scopes are asked for in 403 challenges
		name = a.Name
	}
	// The slash form's document names the slash form: a client checks the
	// resource against the URL it connects to, byte for byte.
	b, err := json.Marshal(s.prm(s.res.Form(id, slash), scopes, name))
	if err != nil {
		writeUnavailable(w)
		return
	}
	writeRawJSON(w, r, b)
}
