package valuesdoc

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		values  string
		want    []Row
		wantErr []string
	}{
		"scalars, groups and types": {
			values: `
# -- A name.
name: ""
image:
  # -- The tag.
  tag: "1.0"
  # -- How many.
  count: 3
  # -- A ratio.
  ratio: 0.5
  # -- On or off.
  on: true
  # -- Nothing yet.
  none: null
`,
			want: []Row{
				{Key: "name", Type: "string", Default: `""`, Description: "A name."},
				{Key: "image.tag", Type: "string", Default: `"1.0"`, Description: "The tag."},
				{Key: "image.count", Type: "int", Default: "3", Description: "How many."},
				{Key: "image.ratio", Type: "float", Default: "0.5", Description: "A ratio."},
				{Key: "image.on", Type: "bool", Default: "true", Description: "On or off."},
				{Key: "image.none", Type: "null", Default: "null", Description: "Nothing yet."},
			},
		},
		"documented map covers its keys; documented children get rows too": {
			values: `
# -- Resources.
resources:
  requests:
    cpu: 50m
# -- TLS.
tls:
  # -- On.
  enabled: false
  issuer:
    name: ca
`,
			want: []Row{
				{Key: "resources", Type: "object", Default: `{"requests":{"cpu":"50m"}}`, Description: "Resources."},
				{Key: "tls", Type: "object", Default: `{"enabled":false,"issuer":{"name":"ca"}}`, Description: "TLS."},
				{Key: "tls.enabled", Type: "bool", Default: "false", Description: "On."},
			},
		},
		"continuation lines, type hint, @default, ordinary comments above": {
			values: `
# A section comment, not documentation.
# -- (int) Grace period,
# in seconds.
# @default -- twice the timeout
grace: null
`,
			want: []Row{{Key: "grace", Type: "int", Default: "twice the timeout", Description: "Grace period, in seconds."}},
		},
		"lists and empty maps need a comment": {
			values: `
group:
  list: []
  map: {}
  nested:
    leaf: 1
`,
			wantErr: []string{
				"values.yaml:3:3: group.list: not documented",
				"values.yaml:4:3: group.map: not documented",
				"values.yaml:6:5: group.nested.leaf: not documented",
			},
		},
		"empty comment text": {
			values:  "# --\nx: 1\n",
			wantErr: []string{"x: the # -- comment has no text"},
		},
		"comment attached to no key": {
			values:  "a:\n  b: 1 # -- a line comment\n# -- B.\nc: 2\n",
			wantErr: []string{"attached to no key", "a.b: not documented"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rows, err := Parse([]byte(tc.values))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nlacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.want) {
				t.Fatalf("got %d rows %+v, want %d", len(rows), rows, len(tc.want))
			}
			for i, w := range tc.want {
				got := rows[i]
				got.Line = 0
				if got != w {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, got, w)
				}
			}
		})
	}
}

func TestTableRoundTrip(t *testing.T) {
	rows := []Row{
		{Key: "a", Type: "string", Default: `"x|y"`, Description: "Pipes | escaped."},
		{Key: "b", Type: "list", Default: "one rule set", Description: "Prose default."},
		{Key: "c", Type: "int", Default: "`x` + 5", Description: "Own backquotes."},
	}
	table := Table(rows)
	for _, want := range []string{"| a | string | `\"x\\|y\"` | Pipes \\| escaped. |", "| b | list | one rule set |", "| c | int | `x` + 5 |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if err := Compare(table, rows); err != nil {
		t.Errorf("Compare(Table(rows), rows): %v", err)
	}
	readme := "# Chart\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n"
	spliced, err := Splice(readme, table)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Extract(spliced)
	if err != nil || got != table {
		t.Errorf("Extract(Splice(table)) = %q, %v; want the table", got, err)
	}
}

func TestCompare(t *testing.T) {
	rows := []Row{
		{Key: "a", Type: "int", Default: "1", Description: "A."},
		{Key: "b", Type: "int", Default: "2", Description: "B."},
	}
	tests := map[string]struct {
		table   string
		wantErr []string
	}{
		"missing and extra keys": {
			table:   tableHeader + "| a | int | `1` | A. |\n| z | int | `9` | Z. |\n",
			wantErr: []string{"lacks b", "lists z, which values.yaml does not document"},
		},
		"changed default": {
			table:   tableHeader + "| a | int | `5` | A. |\n| b | int | `2` | B. |\n",
			wantErr: []string{"default of a is `5`, values.yaml says `1`"},
		},
		"changed description": {
			table:   tableHeader + "| a | int | `1` | Other. |\n| b | int | `2` | B. |\n",
			wantErr: []string{"differs from values.yaml in types, descriptions or order"},
		},
		"malformed row": {
			table:   tableHeader + "| a | int |\n",
			wantErr: []string{"row 3 is not"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Compare(tc.table, rows)
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}
