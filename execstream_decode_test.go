package miosa

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// FuzzDecodeLineData checks the shortcut for {"line":"..."} against
// decoding the whole object: the same line, and an error exactly when the
// object decoding fails.
func FuzzDecodeLineData(f *testing.F) {
	for _, seed := range []string{
		`{"line":"ok"}`, `{"line":"a\tb\"c\u00e9"}`, `{"line":""}`, `{"line":"x"} `, `{"line":"x","y":1}`,
		`{"line":"x"}}`, `{"line":"\ud800"}`, `{"line":"unterminated}`, `{"line":42}`, `{"line":"a"` + "\xff" + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var got, want execLineData
		gotErr := decodeLineData([]byte(data), &got)
		wantErr := json.Unmarshal([]byte(data), &want)
		assert.Equal(t, wantErr == nil, gotErr == nil, "error for %q: %v vs %v", data, gotErr, wantErr)
		if wantErr == nil {
			assert.Equal(t, want, got, data)
		}
	})
}
