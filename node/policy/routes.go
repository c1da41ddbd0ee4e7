package policy

import (
	"errors"
	"net/http"
	"os"

	"github.com/gpunode/gpunode/node/api"
)

// Bodies of the control API's policy routes.
type (
	// AdmissionRequest is the body of the drain and cordon routes.
	AdmissionRequest struct {
		Reason string `json:"reason,omitempty"`
	}
	// RejectionsResponse is the answer of GET /v1/policy/rejections.
	RejectionsResponse struct {
		Recent []Rejection `json:"recent"`
	}
	// PoolUpdateRequest is the body of POST /v1/policy/pool: a signed envelope.
	PoolUpdateRequest struct {
		Signed []byte `json:"signed"`
	}
)

// Routes registers the policy's control-API routes:
//
//	GET  /v1/policy             Status
//	POST /v1/policy/reload      re-read the policy files (as SIGHUP); Status, or the error
//	POST /v1/policy/check       explain a Request against the policy in force; Decision.
//	                            A request without node state gets the node's current one.
//	GET  /v1/policy/rejections  recent rejections with their failed checks
//	POST /v1/policy/pool        apply a signed pool policy (PoolUpdateRequest)
//	GET  /v1/admission          AdmissionStatus
//	POST /v1/admission/drain    AdmissionRequest → AdmissionStatus
//	POST /v1/admission/cordon   AdmissionRequest → AdmissionStatus
//	POST /v1/admission/uncordon AdmissionStatus
func (h *Holder) Routes(s *api.Server) {
	s.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, h.Status())
	})
	s.HandleFunc("POST /v1/policy/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := h.Reload(); err != nil {
			api.WriteError(w, http.StatusUnprocessableEntity, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, h.Status())
	})
	s.HandleFunc("POST /v1/policy/check", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := api.DecodeJSON(r, 1<<20, &req); err != nil {
			api.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if req.Node.Now.IsZero() {
			req.Node = h.CurrentNode()
		}
		api.WriteJSON(w, http.StatusOK, h.Explain(req))
	})
	s.HandleFunc("GET /v1/policy/rejections", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, RejectionsResponse{Recent: h.Rejections()})
	})
	s.HandleFunc("POST /v1/policy/pool", func(w http.ResponseWriter, r *http.Request) {
		var req PoolUpdateRequest
		if err := api.DecodeJSON(r, MaxEnvelopeBytes*2, &req); err != nil {
			api.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if err := h.ApplyPoolUpdate(req.Signed); err != nil {
			status := http.StatusUnprocessableEntity
			if errors.Is(err, os.ErrPermission) {
				status = http.StatusInternalServerError
			}
			api.WriteError(w, status, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, h.Status())
	})
	s.HandleFunc("GET /v1/admission", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, h.Admission())
	})
	admit := func(f func(reason string) AdmissionStatus) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req AdmissionRequest
			if r.ContentLength != 0 {
				if err := api.DecodeJSON(r, 4096, &req); err != nil {
					api.WriteError(w, http.StatusBadRequest, err)
					return
				}
			}
			api.WriteJSON(w, http.StatusOK, f(req.Reason))
		}
	}
	s.HandleFunc("POST /v1/admission/drain", admit(h.Drain))
	s.HandleFunc("POST /v1/admission/cordon", admit(h.Cordon))
	s.HandleFunc("POST /v1/admission/uncordon", admit(func(string) AdmissionStatus { return h.Uncordon() }))
}
