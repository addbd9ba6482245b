package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTime_Decodes(t *testing.T) {
	cases := map[string]time.Time{
		`"2026-05-18T10:00:00Z"`:        time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC),
		`"2026-05-18T10:00:00.123456Z"`: time.Date(2026, 5, 18, 10, 0, 0, 123456000, time.UTC),
		`"2026-05-18T12:00:00+02:00"`:   time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC),
		`1779098400`:                    time.Unix(1779098400, 0).UTC(),
		`1779098400.5`:                  time.Unix(1779098400, 5e8).UTC(),
		`null`:                          {},
		`""`:                            {},
	}
	for in, want := range cases {
		var got Time
		require.NoError(t, json.Unmarshal([]byte(in), &got), in)
		assert.True(t, want.Equal(got.Time), "%s: got %v", in, got.Time)
	}
}

func TestTime_RefusesWhatIsNotATime(t *testing.T) {
	for _, in := range []string{`"yesterday"`, `"2026-05-18"`, `true`, `{}`, `[]`, `1e300`, `-1e300`} {
		var got Time
		assert.Error(t, json.Unmarshal([]byte(in), &got), in)
	}
}

func TestSeconds_DecodesAWholeOrFractionalCount(t *testing.T) {
	cases := map[string]time.Duration{
		`3600`: time.Hour,
		`90.5`: 90*time.Second + 500*time.Millisecond,
		`0`:    0,
		`null`: 0,
	}
	for in, want := range cases {
		var got Seconds
		require.NoError(t, json.Unmarshal([]byte(in), &got), in)
		assert.Equal(t, want, time.Duration(got), in)
	}
}

func TestSeconds_RefusesWhatIsNoDuration(t *testing.T) {
	// 9223372037 seconds no longer fits a time.Duration.
	for _, in := range []string{`-1`, `"60"`, `true`, `{}`, `9223372037`, `1e300`} {
		var got Seconds
		assert.Error(t, json.Unmarshal([]byte(in), &got), in)
	}
}
