package rules

import "gopkg.in/yaml.v3"

// IsTestFile reports whether data is a rules test file (the input of
// `nemesis rules test`) rather than a rule file: a YAML mapping whose top
// level has tests and no ruleSets. Test files live beside the rule files
// they test, so a loader that lists a directory of rule files uses it to
// pass them over instead of rejecting the whole directory.
func IsTestFile(data []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return false
	}
	tests := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "ruleSets":
			return false
		case "tests":
			tests = true
		}
	}
	return tests
}
