package admin

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"

	"github.com/mcpgateway/mcp-gateway/store"
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
	out := make([]*store.Client, 0, len(cs))
	out = append(out, cs...)
	slices.SortFunc(out, func(a, b *store.Client) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
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
	if err := s.store.DeleteClient(r.Context(), id); err != nil {
		s.storeError(w, "delete_client", err, fmt.Sprintf("client %q not found", id))
		return
	}
	s.audit(r, "client_deleted", id)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}
