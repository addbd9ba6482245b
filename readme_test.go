package miosa_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

// The README's longer snippets are copies of code that compiles and runs in
// tests; these checks keep each copy identical to its original.
func TestREADME_SnippetsMatchTheirTestedOriginals(t *testing.T) {
	readme := readFile(t, "README.md")
	for _, tc := range []struct {
		section, original string
	}{
		{"## Quick start", "sandboxes_example_test.go"},
		{"## Fleets", "fleet_example_test.go"},
		{"## Templates", "templates_example_test.go"},
		{"## Streaming exec output", "exec_example_test.go"},
		{"## Background processes", "processes_example_test.go"},
		{"## Files", "files_example_test.go"},
		{"## Snapshots and sandbox lifetime", "snapshots_example_test.go"},
		{"## Desktop", "desktop_example_test.go"},
		{"## Testing your code with miosatest", "miosatest/readme_test.go"},
		// Every example that can talk to the real API chooses it the same way.
		{"## Examples", "examples/quickstart/main.go"},
		{"## Examples", "examples/computers/main.go"},
		{"## Examples", "examples/templates/main.go"},
		{"## Examples", "examples/fanout/main.go"},
		{"## Examples", "examples/cleanup/main.go"},
		{"## Examples", "examples/snapshots/main.go"},
	} {
		t.Run(tc.original, func(t *testing.T) {
			snippet := firstGoBlock(t, readme, tc.section)
			// Indentation differs (an Example body is indented once more),
			// and the test file names its package differently.
			snippet = strings.Replace(normalize(snippet), "package provisioner_test", "package miosatest_test", 1)
			assert.Contains(t, normalize(readFile(t, tc.original)), snippet,
				"the README snippet under %q differs from %s", tc.section, tc.original)
		})
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return string(b)
}

// firstGoBlock returns the first ```go block after the heading.
func firstGoBlock(t *testing.T, markdown, heading string) string {
	t.Helper()
	start := strings.Index(markdown, "\n"+heading+"\n")
	require.GreaterOrEqual(t, start, 0, "README has no section %q", heading)
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(markdown[start:])
	require.NotNil(t, m, "section %q has no go block", heading)
	return m[1]
}

// normalize drops leading white space and blank lines.
func normalize(code string) string {
	var lines []string
	for line := range strings.Lines(code) {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// The README names the version in the User-Agent it documents; a release
// that bumps Version must bump the README with it.
func TestREADME_NamesTheSDKVersion(t *testing.T) {
	mentions := regexp.MustCompile(`miosa-go/v?([0-9][0-9A-Za-z.+-]*[0-9A-Za-z])`).FindAllStringSubmatch(readFile(t, "README.md"), -1)
	require.NotEmpty(t, mentions, "README names no miosa-go/<version>")
	for _, m := range mentions {
		assert.Equal(t, miosa.Version, m[1], "README says %s, Version is %s", m[0], miosa.Version)
	}
}
