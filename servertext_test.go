package miosa

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestJSONValueChecks_ReadOnlyWhatTheLiteralSays(t *testing.T) {
	for _, tc := range []struct {
		raw                      string
		isNull, isTrue, isObject bool
	}{
		{``, true, false, false},
		{`null`, true, false, false},
		{" \n null ", true, false, false},
		{`true`, false, true, false},
		{" true\t", false, true, false},
		{`"true"`, false, false, false},
		{`1`, false, false, false},
		{`false`, false, false, false},
		{`{}`, false, false, true},
		{"  {\"a\":1}", false, false, true},
		{`[{}]`, false, false, false},
		{`"{"`, false, false, false},
	} {
		assert.Equal(t, tc.isNull, isJSONNull([]byte(tc.raw)), "isJSONNull(%q)", tc.raw)
		assert.Equal(t, tc.isTrue, isJSONTrue([]byte(tc.raw)), "isJSONTrue(%q)", tc.raw)
		assert.Equal(t, tc.isObject, isJSONObject([]byte(tc.raw)), "isJSONObject(%q)", tc.raw)
	}
}
