package yamlpos

import (
	"errors"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestErrorLine(t *testing.T) {
	var v any
	real := yaml.Unmarshal([]byte("a: 1\nb: [\n"), &v)
	if real == nil {
		t.Fatal("yaml accepted an unclosed flow sequence")
	}
	for name, tc := range map[string]struct {
		err      error
		wantLine int
		wantMsg  string
	}{
		"yaml.v3.s own":  {real, 2, "did not find expected node content"},
		"no line":        {errors.New("yaml: unknown anchor 'x'"), 1, "unknown anchor 'x'"},
		"bad number":     {errors.New("yaml: line x: oops"), 1, "line x: oops"},
		"line 0":         {errors.New("yaml: line 0: oops"), 1, "line 0: oops"},
		"not yaml's":     {errors.New("read failed"), 1, "read failed"},
		"line and colon": {errors.New("yaml: line 7: mapping values: here"), 7, "mapping values: here"},
	} {
		t.Run(name, func(t *testing.T) {
			line, msg := ErrorLine(tc.err)
			if line != tc.wantLine || msg != tc.wantMsg {
				t.Errorf("ErrorLine(%q) = %d, %q; want %d, %q", tc.err, line, msg, tc.wantLine, tc.wantMsg)
			}
		})
	}
}
