package docker

// SkipPreflight lets a test reach the engine's own error for a GPU request.
func (r *Runtime) SkipPreflight() { r.skipPreflight = true }
