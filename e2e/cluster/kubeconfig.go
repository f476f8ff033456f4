package cluster

import (
	"fmt"
	"os"
)

// writeKubeconfig writes a kubeconfig for server that authenticates with a
// bearer token.
func writeKubeconfig(file, server string, caPEM []byte, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: nemesis-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: nemesis-e2e
  context: {cluster: nemesis-e2e, user: admin}
current-context: nemesis-e2e
`, server, b64(caPEM), token)
	return os.WriteFile(file, []byte(cfg), 0o600)
}
