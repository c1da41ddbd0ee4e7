package docker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/docker/docker/api/types/registry"
)

// DockerConfigFile is the part of the Docker client's config.json that holds
// registry credentials.
type DockerConfigFile struct {
	Auths       map[string]DockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

// DockerAuth is one entry of config.json's "auths".
type DockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// ParseDockerConfig parses config.json. Unknown keys are ignored: the file belongs to
// the Docker client and carries many settings that are not ours.
func ParseDockerConfig(b []byte) (DockerConfigFile, error) {
	var f DockerConfigFile
	if len(b) > 1<<20 {
		return f, errors.New("docker config: larger than 1 MiB")
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("docker config: %w", err)
	}
	for host, a := range f.Auths {
		if a.Auth == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return f, fmt.Errorf("docker config: auths.%q.auth: %w", host, err)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return f, fmt.Errorf("docker config: auths.%q.auth: want base64(user:password)", host)
		}
		a.Username, a.Password = u, p
		f.Auths[host] = a
	}
	for _, h := range append([]string{f.CredsStore}, values(f.CredHelpers)...) {
		if h != "" && !helperRe.MatchString(h) {
			return f, fmt.Errorf("docker config: credential helper %q: want [a-z0-9_.-]", h)
		}
	}
	return f, nil
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

var helperRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (r *Runtime) dockerConfigPath() string {
	if r.cfg.DockerConfig != "" {
		return r.cfg.DockerConfig
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "config.json")
}

// registryAuth returns the engine's X-Registry-Auth value for a registry host: from the
// node's per-registry settings first, then the Docker config file (credential helper
// for the host, the credentials store, then inline auths). Empty means anonymous.
func (r *Runtime) registryAuth(domain string) (string, error) {
	ac, err := r.credentials(domain)
	if err != nil || ac == nil {
		return "", err
	}
	ac.ServerAddress = serverAddress(domain)
	return registry.EncodeAuthConfig(*ac)
}

func serverAddress(domain string) string {
	if domain == "docker.io" || domain == "index.docker.io" {
		return "https://index.docker.io/v1/"
	}
	return domain
}

func (r *Runtime) credentials(domain string) (*registry.AuthConfig, error) {
	if rc, ok := r.cfg.Registries[domain]; ok {
		if rc.CredHelper != "" {
			return credHelperGet(rc.CredHelper, serverAddress(domain))
		}
		return &registry.AuthConfig{Username: rc.Username, Password: rc.Password, IdentityToken: rc.IdentityToken}, nil
	}
	path := r.dockerConfigPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", domain, err)
	}
	f, err := ParseDockerConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if h := f.CredHelpers[domain]; h != "" {
		return credHelperGet(h, serverAddress(domain))
	}
	if f.CredsStore != "" {
		ac, err := credHelperGet(f.CredsStore, serverAddress(domain))
		if err != nil || ac != nil {
			return ac, err
		}
	}
	for _, key := range []string{domain, serverAddress(domain), "https://" + domain, "http://" + domain} {
		if a, ok := f.Auths[key]; ok {
			return &registry.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}, nil
		}
	}
	return nil, nil
}

// credHelperGet runs `docker-credential-<helper> get`, the Docker credential helper
// protocol. A helper that has no credentials for the server means anonymous.
func credHelperGet(helper, server string) (*registry.AuthConfig, error) {
	if !helperRe.MatchString(helper) {
		return nil, fmt.Errorf("credential helper %q: invalid name", helper)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(server)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		out := strings.TrimSpace(stdout.String() + stderr.String())
		if strings.Contains(out, "credentials not found") {
			return nil, nil
		}
		return nil, fmt.Errorf("credential helper docker-credential-%s for %s: %w: %s", helper, server, err, out)
	}
	var c struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("credential helper docker-credential-%s: answer: %w", helper, err)
	}
	if c.Username == "<token>" {
		return &registry.AuthConfig{IdentityToken: c.Secret}, nil
	}
	return &registry.AuthConfig{Username: c.Username, Password: c.Secret}, nil
}
