package admin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mcpgateway/mcp-gateway/store"
	"github.com/mcpgateway/mcp-gateway/token"
)

// ClientList is the body of GET /admin/v1/clients.
type ClientList struct {
	Clients []*store.Client `json:"clients"`
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) {
	cs, err := s.store.ListClients(r.Context())
	if err != nil {
		s.storeError(w, "list_clients", err, "")
		return
	}
	// Oldest first (ListClients orders by id); [], not null, when empty.
	out := append(make([]*store.Client, 0, len(cs)), cs...)
	store.SortByCreated(out)
	writeJSON(w, http.StatusOK, ClientList{Clients: out})
}

// deleteClient removes a registered client. Tokens already issued to it stay
// valid until they expire or are revoked; new authorizations fail.
func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxClientLen {
		writeError(w, http.StatusBadRequest, "invalid client id")
		return
	}
	// Its refresh tokens die with the record (the token endpoint no longer
	// knows the client). Its access tokens are denied on every replica by
	// one denylist entry that lasts until the last token issued before now
	// has expired; tokens expiring later (a CIMD client fetched again) are
	// not affected. Revoked first, so that a failure leaves the client in
	// place for a retry rather than its tokens alive.
	until := s.now().Add(s.accessTTL + token.Leeway)
	if err := s.store.RevokeJTI(r.Context(), store.RevokedClientJTI(id), until); err != nil {
		s.storeError(w, "revoke_client_tokens", err, "")
		return
	}
	if err := s.store.DeleteClient(r.Context(), id); err != nil {
		s.storeError(w, "delete_client", err, fmt.Sprintf("client %q not found", id))
		return
	}
	s.audit(r, "client_deleted", id, "access_tokens_revoked_until", until.UTC().Format(time.RFC3339))
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}
