package miosa

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDecodeObject_EveryTypeRefusesAWrongGuess guards sendForObject's guess:
// it is safe only because decoding refuses an input that is not one JSON
// value. A type whose decoding skipped validation would take a wrong guess
// (the first of several members) for the answer.
func TestDecodeObject_EveryTypeRefusesAWrongGuess(t *testing.T) {
	// object satisfies every type's required fields.
	const object = `{"id":"a","token":"t","url":"https://u.test","ready":true,"exit_code":0}`
	const wrongGuess = object + `,"meta":{"id":"b"}`
	decoders := map[string]func([]byte) error{
		"Computer":         func(b []byte) error { _, err := decodeObject[Computer](b); return err },
		"Sandbox":          func(b []byte) error { _, err := decodeObject[Sandbox](b); return err },
		"ExecResult":       func(b []byte) error { _, err := decodeObject[ExecResult](b); return err },
		"FileExport":       func(b []byte) error { _, err := decodeObject[FileExport](b); return err },
		"PreviewToken":     func(b []byte) error { _, err := decodeObject[PreviewToken](b); return err },
		"Readiness":        func(b []byte) error { _, err := decodeObject[Readiness](b); return err },
		"SandboxTemplate":  func(b []byte) error { _, err := decodeObject[SandboxTemplate](b); return err },
		"ValidationResult": func(b []byte) error { _, err := decodeObject[ValidationResult](b); return err },
		"TemplateBuild":    func(b []byte) error { _, err := decodeObject[TemplateBuild](b); return err },
	}
	for name, decode := range decoders {
		t.Run(name, func(t *testing.T) {
			assert.NoError(t, decode([]byte(object)), "the object alone decodes")
			assert.Error(t, decode([]byte(wrongGuess)))
		})
	}
}
