package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestID_ReadsStringsAndIntegersAlike(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ID
	}{
		{`"1234"`, "1234"},
		{`1234`, "1234"},
		{` 7 `, "7"},
		{`0`, "0"},
		{`-3`, "-3"},
		{`"win-\u0031"`, "win-1"},
		{`""`, ""},
		{`null`, ""},
		{`12345678901234567890123`, "12345678901234567890123"},
	} {
		var got ID
		require.NoError(t, json.Unmarshal([]byte(tc.in), &got), tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestID_RefusesWhatIsNotAnIDWithoutEchoingItAll(t *testing.T) {
	for _, in := range []string{`1.5`, `1e3`, `01`, `-`, `true`, `{}`, `[]`, strings.Repeat("9", 65)} {
		var got ID
		err := json.Unmarshal([]byte(in), &got)
		require.Error(t, err, in)
		assert.LessOrEqual(t, len(err.Error()), 100, in)
	}
}

func FuzzID(f *testing.F) {
	for _, seed := range []string{`"a"`, `12`, `-0`, `null`, `1e2`, `"\u00e9"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var got ID
		if json.Unmarshal([]byte(in), &got) != nil {
			return
		}
		// Whatever decodes is either the string's text or the integer as sent.
		var s string
		if json.Unmarshal([]byte(in), &s) == nil {
			assert.Equal(t, ID(s), got)
			return
		}
		if strings.TrimSpace(in) == "null" {
			assert.Empty(t, got)
			return
		}
		assert.True(t, isInteger([]byte(strings.TrimSpace(in))), in)
		assert.Equal(t, ID(strings.TrimSpace(in)), got)
	})
}
