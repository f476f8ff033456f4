package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// serviceAccountPath is where in-cluster clients look for their token.
	serviceAccountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// autoSAVolume names the agent's own service account volume, made when
	// the pod has none (no admission plugin added it).
	autoSAVolume    = "..nemesis-serviceaccount"
	defaultFileMode = 0o644
	defaultTokenTTL = 3600 // seconds
)

// bindMount is one volume mount of a container.
type bindMount struct {
	src, dst string
	readOnly bool
	file     bool // src is a file (a subPath to one)
}

func (w *worker) volumeDir(name string) string {
	return filepath.Join(w.dir, "volumes", name)
}

func (w *worker) podIP() string {
	if w.ip.IsValid() {
		return w.ip.String()
	}
	return ""
}

// hostname is the pod's hostname: spec.hostname, or its name cut to 63
// characters.
func (w *worker) hostname() string {
	h := w.spec.Hostname
	if h == "" {
		h = w.name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// syncVolumes writes every volume of the pod from the informers' current
// ConfigMaps and Secrets (and tokens); only changed ones are rewritten.
func (w *worker) syncVolumes(ctx context.Context) error {
	var errs []error
	for i := range w.spec.Volumes {
		v := &w.spec.Volumes[i]
		if err := w.syncVolume(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
		}
	}
	if w.autoSA == nil {
		auto, err := w.wantsAutoSA(ctx)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		w.autoSA = &auto
	}
	if *w.autoSA {
		if err := w.syncAutoSA(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *worker) syncVolume(ctx context.Context, v *corev1.Volume) error {
	dir := w.volumeDir(v.Name)
	var payload map[string]fileContent
	var err error
	switch {
	case v.EmptyDir != nil:
		return os.MkdirAll(dir, 0o777)
	case v.HostPath != nil:
		return prepareHostPath(v.HostPath)
	case v.ConfigMap != nil:
		payload, err = w.configMapPayload(v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode, nil)
	case v.Secret != nil:
		payload, err = w.secretPayload(v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode, nil)
	case v.DownwardAPI != nil:
		payload, err = w.downwardPayload(v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, nil)
	case v.Projected != nil:
		payload, err = w.projectedPayload(ctx, v.Projected)
	default:
		return errors.New("this volume type is not supported by the nemesis node agent")
	}
	if err != nil {
		return err
	}
	changed, err := writeAtomic(dir, payload)
	if changed && err == nil {
		w.log.Debug("volume written", "volume", v.Name)
	}
	return err
}

func prepareHostPath(hp *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	switch typ {
	case corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(hp.Path, 0o755)
	case corev1.HostPathFileOrCreate:
		f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	case corev1.HostPathUnset:
		return nil
	default:
		_, err := os.Stat(hp.Path)
		return err
	}
}

func fileMode(item, def *int32) fs.FileMode {
	switch {
	case item != nil:
		return fs.FileMode(*item)
	case def != nil:
		return fs.FileMode(*def)
	default:
		return defaultFileMode
	}
}

// keysPayload turns the data of a ConfigMap or Secret into files: every
// key, or the items asked for.
func keysPayload(kind, name string, data map[string][]byte, items []corev1.KeyToPath, opt bool, defMode *int32, into map[string]fileContent) (map[string]fileContent, error) {
	if into == nil {
		into = map[string]fileContent{}
	}
	if len(items) == 0 {
		for k, v := range data {
			into[k] = fileContent{data: v, mode: fileMode(nil, defMode)}
		}
		return into, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("configuration error: key %q not found in %s %q", it.Key, kind, name)
		}
		into[it.Path] = fileContent{data: v, mode: fileMode(it.Mode, defMode)}
	}
	return into, nil
}

func (w *worker) configMapPayload(name string, items []corev1.KeyToPath, opt *bool, defMode *int32, into map[string]fileContent) (map[string]fileContent, error) {
	cm, err := w.a.configMaps.ConfigMaps(w.ns).Get(name)
	if apierrors.IsNotFound(err) && optional(opt) {
		if into == nil {
			into = map[string]fileContent{}
		}
		return into, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keysPayload("configmap", name, data, items, optional(opt), defMode, into)
}

func (w *worker) secretPayload(name string, items []corev1.KeyToPath, opt *bool, defMode *int32, into map[string]fileContent) (map[string]fileContent, error) {
	s, err := w.a.secrets.Secrets(w.ns).Get(name)
	if apierrors.IsNotFound(err) && optional(opt) {
		if into == nil {
			into = map[string]fileContent{}
		}
		return into, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keysPayload("secret", name, s.Data, items, optional(opt), defMode, into)
}

func (w *worker) downwardPayload(items []corev1.DownwardAPIVolumeFile, defMode *int32, into map[string]fileContent) (map[string]fileContent, error) {
	if into == nil {
		into = map[string]fileContent{}
	}
	for _, it := range items {
		if it.FieldRef == nil {
			return nil, fmt.Errorf("downward API file %q: only fieldRef is supported by the nemesis node agent", it.Path)
		}
		v, err := fieldValue(w.cur, w.podIP(), w.a.cfg.Gateway.String(), it.FieldRef.FieldPath)
		if err != nil {
			return nil, fmt.Errorf("downward API file %q: %w", it.Path, err)
		}
		into[it.Path] = fileContent{data: []byte(v), mode: fileMode(it.Mode, defMode)}
	}
	return into, nil
}

func (w *worker) projectedPayload(ctx context.Context, p *corev1.ProjectedVolumeSource) (map[string]fileContent, error) {
	payload := map[string]fileContent{}
	var err error
	for _, src := range p.Sources {
		switch {
		case src.ConfigMap != nil:
			payload, err = w.configMapPayload(src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, p.DefaultMode, payload)
		case src.Secret != nil:
			payload, err = w.secretPayload(src.Secret.Name, src.Secret.Items, src.Secret.Optional, p.DefaultMode, payload)
		case src.DownwardAPI != nil:
			payload, err = w.downwardPayload(src.DownwardAPI.Items, p.DefaultMode, payload)
		case src.ServiceAccountToken != nil:
			t := src.ServiceAccountToken
			seconds := int64(defaultTokenTTL)
			if t.ExpirationSeconds != nil {
				seconds = *t.ExpirationSeconds
			}
			var tok string
			tok, err = w.token(ctx, t.Audience, seconds)
			if err == nil {
				payload[t.Path] = fileContent{data: []byte(tok), mode: fileMode(nil, p.DefaultMode)}
			}
		default:
			err = errors.New("projected source: only configMap, secret, downwardAPI and serviceAccountToken are supported by the nemesis node agent")
		}
		if err != nil {
			return nil, err
		}
	}
	return payload, nil
}

// wantsAutoSA decides whether the agent mounts a service account token
// itself: when no admission plugin gave the pod its kube-api-access volume
// and neither the pod nor its service account opts out.
func (w *worker) wantsAutoSA(ctx context.Context) (bool, error) {
	for _, v := range w.spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				return false, nil
			}
		}
	}
	if w.spec.AutomountServiceAccountToken != nil {
		return *w.spec.AutomountServiceAccountToken, nil
	}
	sa, err := w.a.cfg.Client.CoreV1().ServiceAccounts(w.ns).Get(ctx, w.serviceAccount(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("getting service account %q: %w", w.serviceAccount(), err)
	case sa.AutomountServiceAccountToken != nil:
		return *sa.AutomountServiceAccountToken, nil
	}
	return true, nil
}

func (w *worker) serviceAccount() string {
	if w.spec.ServiceAccountName != "" {
		return w.spec.ServiceAccountName
	}
	return "default"
}

// syncAutoSA writes the agent's own service account volume: token,
// ca.crt, namespace.
func (w *worker) syncAutoSA(ctx context.Context) error {
	tok, err := w.token(ctx, "", defaultTokenTTL)
	if err != nil {
		return fmt.Errorf("service account token: %w", err)
	}
	_, err = writeAtomic(w.volumeDir(autoSAVolume), map[string]fileContent{
		"token":     {data: []byte(tok), mode: defaultFileMode},
		"ca.crt":    {data: w.a.cfg.CACert, mode: defaultFileMode},
		"namespace": {data: []byte(w.ns), mode: defaultFileMode},
	})
	return err
}

// containerMounts lists a container's bind mounts, parents before
// children.
func (w *worker) containerMounts(c *corev1.Container) ([]bindMount, error) {
	var mounts []bindMount
	hasSA := false
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(w.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return nil, fmt.Errorf("volume mount %q: no such volume", m.Name)
		}
		if m.SubPathExpr != "" {
			return nil, fmt.Errorf("volume mount %q: subPathExpr is not supported by the nemesis node agent", m.Name)
		}
		if !path.IsAbs(m.MountPath) {
			return nil, fmt.Errorf("volume mount %q: mount path %q is not absolute", m.Name, m.MountPath)
		}
		v := &w.spec.Volumes[i]
		src := w.volumeDir(v.Name)
		if v.HostPath != nil {
			src = v.HostPath.Path
		}
		readOnly := m.ReadOnly || v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil
		bm := bindMount{src: src, dst: path.Clean(m.MountPath), readOnly: readOnly}
		if m.SubPath != "" {
			if err := validPayloadPath(m.SubPath); err != nil {
				return nil, fmt.Errorf("volume mount %q: subPath: %w", m.Name, err)
			}
			bm.src = filepath.Join(src, m.SubPath)
			info, err := os.Stat(bm.src)
			switch {
			case errors.Is(err, fs.ErrNotExist) && (v.EmptyDir != nil || v.HostPath != nil):
				if err := os.MkdirAll(bm.src, 0o755); err != nil {
					return nil, fmt.Errorf("volume mount %q: %w", m.Name, err)
				}
			case err != nil:
				return nil, fmt.Errorf("volume mount %q: %w", m.Name, err)
			default:
				bm.file = !info.IsDir()
			}
		}
		if bm.dst == serviceAccountPath {
			hasSA = true
		}
		mounts = append(mounts, bm)
	}
	if w.autoSA != nil && *w.autoSA && !hasSA {
		mounts = append(mounts, bindMount{src: w.volumeDir(autoSAVolume), dst: serviceAccountPath, readOnly: true})
	}
	slices.SortStableFunc(mounts, func(a, b bindMount) int {
		return strings.Count(a.dst, "/") - strings.Count(b.dst, "/")
	})
	return mounts, nil
}

// wrap returns the command line that runs binary with args in the pod's
// namespaces: its network namespace, a private mount namespace with the
// volume mounts, and a UTS namespace with the pod's hostname.
func (w *worker) wrap(binary string, args []string, mounts []bindMount) []string {
	inner := append([]string{binary}, args...)
	if w.spec.HostNetwork && len(mounts) == 0 {
		return inner
	}
	t := w.a.tools
	var script strings.Builder
	script.WriteString("set -e\n")
	if !w.spec.HostNetwork {
		fmt.Fprintf(&script, "printf %%s %s > /proc/sys/kernel/hostname\n", shellQuote(w.hostname()))
	}
	for _, m := range mounts {
		dst := shellQuote(m.dst)
		if m.file {
			fmt.Fprintf(&script, "[ -e %s ] || { %s -p %s && : > %s; }\n", dst, t.mkdir, shellQuote(path.Dir(m.dst)), dst)
		} else {
			fmt.Fprintf(&script, "%s -p %s\n", t.mkdir, dst)
		}
		fmt.Fprintf(&script, "%s --bind %s %s\n", t.mount, shellQuote(m.src), dst)
		if m.readOnly {
			fmt.Fprintf(&script, "%s -o remount,bind,ro %s\n", t.mount, dst)
		}
	}
	script.WriteString(`exec "$@"`)
	sh := append([]string{t.sh, "-c", script.String(), "sh"}, inner...)
	if w.spec.HostNetwork {
		return append([]string{t.unshare, "--mount", "--"}, sh...)
	}
	return append([]string{t.ip, "netns", "exec", w.net.netns, t.unshare, "--mount", "--uts", "--"}, sh...)
}
