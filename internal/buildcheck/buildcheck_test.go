package buildcheck

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// root is the repository, from this package's directory.
const root = "../.."

func readRoot(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImageBuildsWithTheTaskfileCommand checks the repository's Dockerfile
// against its Taskfile.yml and go.mod.
func TestImageBuildsWithTheTaskfileCommand(t *testing.T) {
	if err := check(readRoot(t, "Dockerfile"), readRoot(t, "Taskfile.yml"), readRoot(t, "go.mod")); err != nil {
		t.Error(err)
	}
}

// TestCheckFails proves every check can fail: each case breaks one of the
// real files in one way, and check must say so.
func TestCheckFails(t *testing.T) {
	type edit struct {
		file     string // Dockerfile, Taskfile.yml or go.mod
		old, new string
		n        int // occurrence to replace, from 1; 0 for all
	}
	cases := map[string]struct {
		edit    edit
		wantErr string
	}{
		"ldflags drift": {edit{"Dockerfile", `-ldflags "-s -w `, `-ldflags "-w `, 0},
			"is not the Taskfile's"},
		"trimpath dropped from the Taskfile": {edit{"Taskfile.yml", "go build -trimpath ", "go build ", 1},
			"is not the Taskfile's"},
		"output path drift": {edit{"Taskfile.yml", "-o bin/nemesis ./cmd/nemesis", "-o out/nemesis ./cmd/nemesis", 1},
			"COPY"},
		"version variable renamed": {edit{"Taskfile.yml", "main.version={{.VERSION}}", "main.version={{.TAG}}", 1},
			"{{.VERSION}}"},
		"build task bypasses BUILD": {edit{"Taskfile.yml", "      - '{{.BUILD}}'", "      - go build ./cmd/nemesis", 1},
			"build task"},
		"go version drift": {edit{"go.mod", "\ngo 1.", "\ngo 0.", 1},
			"go.mod"},
		"ARG out of the final stage": {edit{"Dockerfile", "ARG VERSION=dev\nARG REVISION", "ARG REVISION", 1},
			"${VERSION}"},
		"entrypoint with a subcommand": {edit{"Dockerfile", `ENTRYPOINT ["/nemesis"]`, `ENTRYPOINT ["/nemesis", "scaler"]`, 1},
			"ENTRYPOINT"},
		"root user": {edit{"Dockerfile", "USER 65532:65532", "USER root", 1},
			"USER"},
		"missing OCI label": {edit{"Dockerfile", "org.opencontainers.image.licenses=", "org.opencontainers.image.license=", 1},
			"org.opencontainers.image.licenses"},
		"other base image": {edit{"Dockerfile", "gcr.io/distroless/static-debian12:nonroot", "debian:bookworm-slim", 1},
			"distroless"},
		"build arg the Dockerfile ignores": {edit{"Taskfile.yml", "--build-arg REVISION=", "--build-arg COMMIT=", 1},
			"COMMIT"},
	}
	files := map[string]string{}
	for _, name := range []string{"Dockerfile", "Taskfile.yml", "go.mod"} {
		files[name] = readRoot(t, name)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := maps.Clone(files)
			src := f[tc.edit.file]
			if !strings.Contains(src, tc.edit.old) {
				t.Fatalf("%s no longer holds %q: update the case", tc.edit.file, tc.edit.old)
			}
			if tc.edit.n == 0 {
				f[tc.edit.file] = strings.ReplaceAll(src, tc.edit.old, tc.edit.new)
			} else {
				f[tc.edit.file] = strings.Replace(src, tc.edit.old, tc.edit.new, tc.edit.n)
			}
			err := check(f["Dockerfile"], f["Taskfile.yml"], f["go.mod"])
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN, …
	args string
}

type stage struct {
	from, name string
	instrs     []instruction
}

// parseDockerfile splits src into stages of instructions. It knows what
// the Dockerfile uses: comments, blank lines and \ continuations.
func parseDockerfile(src string) ([]stage, error) {
	var (
		stages []stage
		cur    *instruction
		buf    strings.Builder
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		cur.args = strings.TrimSpace(buf.String())
		buf.Reset()
		in := *cur
		cur = nil
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return nil
		}
		if len(stages) == 0 {
			return fmt.Errorf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		return nil
	}
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur == nil {
			cmd, rest, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd)}
			trimmed = rest
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			buf.WriteString(cont + " ")
			continue
		}
		buf.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("Dockerfile ends in a continuation line")
	}
	return stages, flush()
}

type taskfile struct {
	Vars  map[string]any `yaml:"vars"`
	Tasks map[string]struct {
		Cmds []any `yaml:"cmds"`
	} `yaml:"tasks"`
}

// cmds are a task's commands: plain strings, or the cmd of a mapping.
func (tf taskfile) cmds(task string) []string {
	var out []string
	for _, c := range tf.Tasks[task].Cmds {
		switch c := c.(type) {
		case string:
			out = append(out, c)
		case map[string]any:
			if s, ok := c["cmd"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

var (
	goDirective = regexp.MustCompile(`(?m)^go (\S+)$`)
	toolchain   = regexp.MustCompile(`(?m)^toolchain go(\S+)$`)
	outputFlag  = regexp.MustCompile(`(?:^|\s)-o\s+(\S+)`)
	buildArg    = regexp.MustCompile(`--build-arg\s+(\w+)=`)
	variableRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	labelPair   = regexp.MustCompile(`([\w.\-]+)="([^"]*)"`)
)

// finalBase is the base of the image: static binaries only, no shell, and
// a non-root user.
const finalBase = "gcr.io/distroless/static-debian12:nonroot"

// ociLabels are the annotations every image carries.
var ociLabels = []string{
	"org.opencontainers.image.source",
	"org.opencontainers.image.version",
	"org.opencontainers.image.revision",
	"org.opencontainers.image.title",
	"org.opencontainers.image.description",
	"org.opencontainers.image.licenses",
}

// check reports every way the Dockerfile departs from the Taskfile's
// build command, go.mod's Go version and the image's conventions.
func check(dockerfile, taskfileSrc, gomod string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var tf taskfile
	if err := yaml.Unmarshal([]byte(taskfileSrc), &tf); err != nil {
		return fmt.Errorf("parsing Taskfile.yml: %w", err)
	}
	build, ok := tf.Vars["BUILD"].(string)
	if !ok {
		return errors.New("Taskfile.yml: no vars.BUILD string, the one build command")
	}
	if !slices.Contains(tf.cmds("build"), "{{.BUILD}}") {
		fail("Taskfile.yml: the build task does not run {{.BUILD}} (its commands: %q)", tf.cmds("build"))
	}
	if strings.Count(build, "{{.VERSION}}") != 1 || strings.Count(build, "{{") != 1 {
		fail("Taskfile.yml: BUILD %q must hold {{.VERSION}} once and no other template", build)
	}
	// The image's build runs BUILD with the version from its build arg.
	want := strings.ReplaceAll(build, "{{.VERSION}}", "${VERSION}")

	stages, err := parseDockerfile(dockerfile)
	if err != nil {
		return err
	}
	if len(stages) < 2 {
		return fmt.Errorf("Dockerfile: %d stage(s), want a build stage and a final one", len(stages))
	}
	var buildStage *stage
	for i := range stages {
		if stages[i].name == "build" {
			buildStage = &stages[i]
		}
	}
	if buildStage == nil {
		return errors.New("Dockerfile: no stage named build")
	}

	// The Go of go.mod, on Debian bookworm.
	goVersion := ""
	if m := toolchain.FindStringSubmatch(gomod); m != nil {
		goVersion = m[1]
	} else if m := goDirective.FindStringSubmatch(gomod); m != nil {
		goVersion = m[1]
	}
	if wantFrom := "golang:" + goVersion + "-bookworm"; buildStage.from != wantFrom {
		fail("Dockerfile: the build stage is FROM %s, want %s (the Go of go.mod)", buildStage.from, wantFrom)
	}

	// The build command.
	var runs []string
	workdir := "/"
	for _, in := range buildStage.instrs {
		switch in.cmd {
		case "WORKDIR":
			workdir = in.args
		case "RUN":
			if strings.Contains(in.args, "go build") {
				runs = append(runs, stripRunFlags(in.args))
			}
		}
	}
	switch {
	case len(runs) != 1:
		fail("Dockerfile: %d RUN instructions of the build stage run go build, want 1", len(runs))
	case runs[0] != want:
		fail("Dockerfile: the build command\n\t%s\nis not the Taskfile's (BUILD, with ${VERSION} for {{.VERSION}})\n\t%s", runs[0], want)
	}

	// Every variable a stage uses is declared in that stage: an ARG is
	// scoped to the stage that declares it.
	for _, s := range stages {
		declared := map[string]bool{}
		for _, in := range s.instrs {
			switch in.cmd {
			case "ARG", "ENV":
				name, _, _ := strings.Cut(in.args, "=")
				declared[strings.Fields(name)[0]] = true
			case "RUN", "LABEL", "COPY", "USER", "WORKDIR":
				for _, m := range variableRef.FindAllStringSubmatch(in.args, -1) {
					if v := m[1] + m[2]; !declared[v] {
						fail("Dockerfile:%d: %s uses ${%s}, which no ARG or ENV before it in this stage declares", in.line, in.cmd, v)
					}
				}
			}
		}
	}

	// The final stage.
	final := stages[len(stages)-1]
	if final.from != finalBase {
		fail("Dockerfile: the final stage is FROM %s, want %s (distroless static, non-root)", final.from, finalBase)
	}
	var entrypoint, user, copied string
	labels := map[string]string{}
	for _, in := range final.instrs {
		switch in.cmd {
		case "ENTRYPOINT":
			entrypoint = in.args
		case "USER":
			user = in.args
		case "CMD":
			fail("Dockerfile:%d: CMD in the final stage: the pod's args pick the component", in.line)
		case "COPY":
			copied = in.args
		case "LABEL":
			for _, m := range labelPair.FindAllStringSubmatch(in.args, -1) {
				labels[m[1]] = m[2]
			}
		}
	}
	if entrypoint != `["/nemesis"]` {
		fail(`Dockerfile: ENTRYPOINT %s, want ["/nemesis"]: one image for both subcommands`, entrypoint)
	}
	if u, _, _ := strings.Cut(user, ":"); u != "65532" {
		fail("Dockerfile: USER %q in the final stage, want 65532 (distroless' nonroot)", user)
	}
	if m := outputFlag.FindStringSubmatch(build); m == nil {
		fail("Taskfile.yml: BUILD %q has no -o", build)
	} else if wantCopy := "--from=build " + filepath.Join(workdir, m[1]) + " /nemesis"; copied != wantCopy {
		fail("Dockerfile: COPY %s in the final stage, want COPY %s (BUILD's -o under the build stage's WORKDIR)", copied, wantCopy)
	}
	for _, l := range ociLabels {
		if labels[l] == "" {
			fail("Dockerfile: no %s label", l)
		}
	}
	for label, arg := range map[string]string{"org.opencontainers.image.version": "VERSION", "org.opencontainers.image.revision": "REVISION"} {
		if labels[label] != "${"+arg+"}" {
			fail("Dockerfile: label %s=%q, want ${%s} from the build arg", label, labels[label], arg)
		}
	}

	// The image task passes only build args the Dockerfile declares, and
	// the version.
	args := map[string]bool{}
	for _, c := range tf.cmds("image") {
		for _, m := range buildArg.FindAllStringSubmatch(c, -1) {
			args[m[1]] = true
		}
	}
	if !args["VERSION"] || !args["REVISION"] {
		fail("Taskfile.yml: the image task passes build args %v, want VERSION and REVISION", slices.Sorted(maps.Keys(args)))
	}
	for a := range args {
		if !regexp.MustCompile(`(?m)^ARG ` + a + `\b`).MatchString(dockerfile) {
			fail("Taskfile.yml: the image task passes --build-arg %s, which the Dockerfile does not declare", a)
		}
	}
	return errors.Join(errs...)
}

// stripRunFlags drops RUN's own flags (--mount=…, --network=…) before the
// command.
func stripRunFlags(args string) string {
	for strings.HasPrefix(args, "--") {
		_, rest, _ := strings.Cut(args, " ")
		args = strings.TrimSpace(rest)
	}
	return args
}
