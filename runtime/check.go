package runtime

import "errors"

// Errors of a dry run (see Checked), checked with errors.Is.
var (
	// ErrImageTooLarge means the image is larger than the operator allows.
	ErrImageTooLarge = errors.New("image larger than the operator allows")
	// ErrPlatform means the image is built for another OS or CPU architecture.
	ErrPlatform = errors.New("image built for another platform")
	// ErrContainerRefused means the engine refused to create the job's container as it
	// would be run (a memory limit below the engine's minimum, a missing entrypoint…).
	ErrContainerRefused = errors.New("the engine refuses the job's container")
	// ErrOverCaps means the job asks for more than the operator's ceilings (CPUs,
	// memory, /tmp, running time) allow.
	ErrOverCaps = errors.New("more than the operator's limits allow")
)

// Checked is what a dry run of a job's container found before the job was taken: the
// image pulled by digest and inspected, and its container created with the exact
// configuration it would run with, then removed.
type Checked struct {
	// ImageID is the engine's ID of the job's image.
	ImageID string `json:"image_id"`
	// ImageBytes is the image's size as the engine stores it (uncompressed).
	ImageBytes int64 `json:"image_bytes"`
	// Platform is the image's os/architecture.
	Platform string `json:"platform"`
}
