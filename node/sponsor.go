package node

import (
	"net/http"

	"github.com/gpunode/gpunode/node/api"
)

// routes serves the job side: the machine's jobs, GET /v1/market/posted, the jobs this
// node posted, and GET /v1/market/ledger, what it was credited and withdrew.
func (w *work) routes(s *api.Server) {
	w.machine.Routes(s)
	s.HandleFunc("GET /v1/market/ledger", func(rw http.ResponseWriter, r *http.Request) {
		out, err := w.ledger.Entries()
		if err != nil {
			api.WriteError(rw, http.StatusInternalServerError, err)
			return
		}
		api.WriteJSON(rw, http.StatusOK, out)
	})
	s.HandleFunc("GET /v1/market/posted", func(rw http.ResponseWriter, r *http.Request) {
		list, err := w.sponsored.List(r.Context())
		if err != nil {
			api.WriteError(rw, http.StatusBadGateway, err)
			return
		}
		api.WriteJSON(rw, http.StatusOK, list)
	})
}
