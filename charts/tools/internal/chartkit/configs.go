package chartkit

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Configs are the configuration files a rendering gives the binaries, as
// the pods will see them, found by following each Deployment's flags to
// its volume mounts and the rendered ConfigMaps behind them.
type Configs struct {
	// RuleFiles holds, for each scaler Deployment and each of its --rules
	// paths served by a rendered ConfigMap, the files of that ConfigMap:
	// path in the pod (--rules value + "/" + key) → content.
	RuleFiles map[string]string
	// ActivatorFiles holds each activator Deployment's --config file when a
	// rendered ConfigMap serves it: path in the pod → content.
	ActivatorFiles map[string]string
	// External lists the ConfigMaps the pods mount that the chart does not
	// render (brought by the user); their content cannot be checked here.
	External []string
}

// ConfigFiles follows the scaler's --rules and the activator's --config
// flags to the rendered ConfigMaps. A flag whose path is not a mounted
// ConfigMap, or a ConfigMap that lacks the activator's file, is an error.
func ConfigFiles(objs []*Object) (*Configs, error) {
	cms := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		if cm, ok := o.Typed.(*corev1.ConfigMap); ok {
			cms[cm.Namespace+"/"+cm.Name] = cm
		}
	}
	c := &Configs{RuleFiles: map[string]string{}, ActivatorFiles: map[string]string{}}
	for _, o := range objs {
		d, ok := o.Typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		switch Component(d) {
		case "scaler":
			for _, dir := range Flag(args, "rules") {
				name, err := mountedConfigMap(d, dir)
				if err != nil {
					return nil, fmt.Errorf("%s: --rules=%s: %w", o.ID(), dir, err)
				}
				cm, ok := cms[d.Namespace+"/"+name]
				if !ok {
					c.External = append(c.External, d.Namespace+"/"+name)
					continue
				}
				for key, content := range cm.Data {
					c.RuleFiles[path.Join(dir, key)] = content
				}
			}
		case "activator":
			for _, file := range Flag(args, "config") {
				name, err := mountedConfigMap(d, path.Dir(file))
				if err != nil {
					return nil, fmt.Errorf("%s: --config=%s: %w", o.ID(), file, err)
				}
				cm, ok := cms[d.Namespace+"/"+name]
				if !ok {
					c.External = append(c.External, d.Namespace+"/"+name)
					continue
				}
				content, ok := cm.Data[path.Base(file)]
				if !ok {
					return nil, fmt.Errorf("%s: --config=%s: ConfigMap %s has no key %q", o.ID(), file, name, path.Base(file))
				}
				c.ActivatorFiles[file] = content
			}
		}
	}
	slices.Sort(c.External)
	c.External = slices.Compact(c.External)
	return c, nil
}

// mountedConfigMap returns the ConfigMap mounted whole at dir in the first
// container of d.
func mountedConfigMap(d *appsv1.Deployment, dir string) (string, error) {
	pod := d.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		if path.Clean(m.MountPath) != path.Clean(dir) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				return v.ConfigMap.Name, nil
			}
		}
		return "", fmt.Errorf("volume %q mounted there is not a ConfigMap", m.Name)
	}
	return "", fmt.Errorf("no volume is mounted there")
}

// Write puts the files of c under root, each at root + its path in the pod,
// and returns the --rules directories and activator files as paths under
// root, for a checker to read.
func (c *Configs) Write(root string) (ruleDirs, activatorFiles []string, err error) {
	write := func(podPath, content string) (string, error) {
		p := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(podPath, "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		return p, os.WriteFile(p, []byte(content), 0o644)
	}
	for podPath, content := range c.RuleFiles {
		p, err := write(podPath, content)
		if err != nil {
			return nil, nil, err
		}
		ruleDirs = append(ruleDirs, filepath.Dir(p))
	}
	for podPath, content := range c.ActivatorFiles {
		p, err := write(podPath, content)
		if err != nil {
			return nil, nil, err
		}
		activatorFiles = append(activatorFiles, p)
	}
	slices.Sort(ruleDirs)
	slices.Sort(activatorFiles)
	return slices.Compact(ruleDirs), activatorFiles, nil
}
