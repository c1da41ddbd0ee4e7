//go:build integration || gpu

package testenv

// Integration is true in the integration tier (build tag integration, or gpu for the
// rig check), where tests may use external components; the unit tier (make
// test-unit) builds without the tags.
const Integration = true
