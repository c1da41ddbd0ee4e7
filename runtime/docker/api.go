package docker

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/runtime"
)

// Routes registers the runtime's control-API routes:
//
//	POST /v1/images/pull       pull an image; answers newline-delimited api.PullEvent
//	GET  /v1/images            the node's image cache
//	POST /v1/images/prune      prune the cache to its cap (or api.PruneRequest.CapBytes)
//	GET  /v1/jobs/{id}/logs    a job's log; ?follow=1 streams until the job ends
func (r *Runtime) Routes(s *api.Server) {
	s.HandleStream("POST /v1/images/pull", r.handlePull)
	s.HandleFunc("GET /v1/images", r.handleImages)
	s.HandleFunc("POST /v1/images/prune", r.handlePrune)
	s.HandleStream("GET /v1/jobs/{id}/logs", r.handleLogs)
}

func (r *Runtime) handlePull(w http.ResponseWriter, req *http.Request) {
	var pr api.PullRequest
	if err := api.DecodeJSON(req, 64<<10, &pr); err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if _, err := ParseImageRef(pr.Ref, pr.AllowTag); err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(ev api.PullEvent) {
		_ = enc.Encode(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
	im, err := r.Pull(req.Context(), pr.Ref, pr.AllowTag, func(p runtime.PullProgress) { ap := api.PullProgress(p); send(api.PullEvent{Progress: &ap}) })
	if err != nil {
		send(api.PullEvent{Error: err.Error()})
		return
	}
	ai := api.Image(im)
	send(api.PullEvent{Image: &ai})
}

func (r *Runtime) handleImages(w http.ResponseWriter, req *http.Request) {
	imgs, err := r.Images(req.Context())
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	if imgs == nil {
		imgs = []runtime.Image{}
	}
	api.WriteJSON(w, http.StatusOK, imgs)
}

func (r *Runtime) handlePrune(w http.ResponseWriter, req *http.Request) {
	var pr api.PruneRequest
	if req.ContentLength != 0 {
		if err := api.DecodeJSON(req, 4<<10, &pr); err != nil {
			api.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	capBytes := r.cfg.ImageCacheBytes
	if pr.CapBytes != nil {
		capBytes = *pr.CapBytes
	}
	rep, err := r.PruneImagesTo(req.Context(), capBytes)
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, rep)
}

func (r *Runtime) handleLogs(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	follow := req.URL.Query().Get("follow") == "1"
	rc, err := r.Logs(req.Context(), id, follow)
	if errors.Is(err, runtime.ErrUnknownJob) {
		api.WriteError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}
