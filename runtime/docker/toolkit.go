package docker

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Minimum is the oldest release of a component of the GPU path that is known to be
// patched against container escapes, on one release branch.
type Minimum struct {
	// Component is "nvidia-container-toolkit" or "runc".
	Component string
	// Branch is the major.minor line the row applies to; "" for every line without a
	// row of its own.
	Branch string
	// Version is the first patched release.
	Version string
	// Fixes names what an older release lets a job do.
	Fixes string
}

// Minimums is the one table of patched releases: a GPU job runs only where the toolkit
// and runc are at least these. The preflight checks it and `gpunode status` shows it.
var Minimums = []Minimum{
	{"nvidia-container-toolkit", "", "1.17.8",
		"CVE-2025-23266 (an image's LD_PRELOAD is loaded by the createContainer hook on the host), CVE-2024-0132 and CVE-2025-23359 (a crafted image reaches the host's filesystem)"},
	{"runc", "", "1.2.8",
		"CVE-2025-31133, CVE-2025-52565 and CVE-2025-52881 (a job escapes through masked paths, /dev/console or procfs writes), CVE-2024-21626 (a leaked host directory descriptor)"},
	{"runc", "1.3", "1.3.3",
		"CVE-2025-31133, CVE-2025-52565 and CVE-2025-52881 (a job escapes through masked paths, /dev/console or procfs writes)"},
	{"runc", "1.4", "1.4.0-rc.3",
		"CVE-2025-31133, CVE-2025-52565 and CVE-2025-52881 (a job escapes through masked paths, /dev/console or procfs writes)"},
}

// CheckVersion checks a component's version string, as its tools print it
// ("NVIDIA Container Toolkit CLI version 1.17.8", "cli-version: 1.17.4", "1.1.12+ds1"),
// against Minimums. The error says what to upgrade to and why.
func CheckVersion(component, output string) (version string, err error) {
	v, ok := parseVersion(output)
	if !ok {
		return "", fmt.Errorf("%s: no version in %q", component, firstLine(output))
	}
	min, ok := minimumFor(component, v)
	if !ok {
		return v.String(), fmt.Errorf("%s: no minimum version known", component)
	}
	mv, _ := parseVersion(min.Version)
	if v.less(mv) {
		return v.String(), fmt.Errorf("%s %s is older than %s, the first release fixing %s: upgrade %s to %s or later (your distribution's package if it carries the fixes), then restart dockerd",
			component, v, min.Version, min.Fixes, component, min.Version)
	}
	return v.String(), nil
}

func minimumFor(component string, v semver) (Minimum, bool) {
	branch := fmt.Sprintf("%d.%d", v.n[0], v.n[1])
	var general *Minimum
	for i, m := range Minimums {
		if m.Component != component {
			continue
		}
		if m.Branch == branch {
			return m, true
		}
		if m.Branch == "" {
			general = &Minimums[i]
		}
	}
	if general == nil {
		return Minimum{}, false
	}
	return *general, true
}

// semver is a release number with an optional pre-release tag (1.4.0-rc.3).
type semver struct {
	n   [3]int
	pre string
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.]+)?`)

func parseVersion(s string) (semver, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	var v semver
	for i := 0; i < 3; i++ {
		n, err := strconv.Atoi(m[i+1])
		if err != nil || n > 1_000_000 {
			return semver{}, false
		}
		v.n[i] = n
	}
	v.pre = strings.TrimPrefix(m[4], "-")
	return v, true
}

// less orders releases; a pre-release comes before its release, pre-releases by their
// dot-separated parts (numbers numerically).
func (v semver) less(w semver) bool {
	for i := range v.n {
		if v.n[i] != w.n[i] {
			return v.n[i] < w.n[i]
		}
	}
	switch {
	case v.pre == w.pre:
		return false
	case v.pre == "":
		return false
	case w.pre == "":
		return true
	}
	a, b := strings.Split(v.pre, "."), strings.Split(w.pre, ".")
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		x, errx := strconv.Atoi(a[i])
		y, erry := strconv.Atoi(b[i])
		if errx == nil && erry == nil {
			return x < y
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}

func (v semver) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.n[0], v.n[1], v.n[2])
	if v.pre != "" {
		s += "-" + v.pre
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
