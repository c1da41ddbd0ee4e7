package doctor

import (
	"fmt"
	"strings"

	"github.com/gpunode/gpunode/node/api"
)

// Daemon reports the running daemon's own checks (GET /v1/status); st is nil when no
// daemon answers on the API socket.
func Daemon(st *api.Status, socket string) Result {
	const name = "daemon"
	if st == nil {
		return Result{Name: name, Status: Skip, Detail: "no daemon answers on " + socket + ": its own checks show in gpunode status once it runs", Fix: "start it: systemctl start gpunode (or gpunode daemon)"}
	}
	var failing, fixes []string
	for _, c := range st.Checks {
		if !c.OK {
			failing = append(failing, c.Name)
			fixes = append(fixes, c.Name+": "+c.Message)
		}
	}
	if len(failing) > 0 {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("the daemon (%s) reports failing checks: %s", st.State, strings.Join(failing, ", ")), Fix: strings.Join(fixes, "; ")}
	}
	return ok(name, "the daemon is %s, its %d checks pass", st.State, len(st.Checks))
}
