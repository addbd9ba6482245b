package miosatest

import (
	"fmt"

	"github.com/miosa-ai/miosa-go/internal/fakeapi"
)

// FormPart is one part of a file upload's multipart form as the server read
// it: its field Name, the FileName and ContentType it declared, a text
// field's Value and the part's Size in bytes. Request.Parts lists them in
// the order they arrived.
type FormPart = fakeapi.FormPart

// WriteFile puts data at path on a computer or sandbox, as an upload would,
// creating missing directories; a relative path is taken from /home/user.
// Commands run with WithLocalShell see the file. It fails for an unknown id.
func (s *Server) WriteFile(computerID, path string, data []byte) error {
	if err := s.engine.WriteFile(computerID, path, data); err != nil {
		return fmt.Errorf("miosatest: WriteFile: %w", err)
	}
	return nil
}

// ReadFile returns the content of the file at path on a computer or
// sandbox: what an upload or a local command left there.
func (s *Server) ReadFile(computerID, path string) ([]byte, error) {
	data, err := s.engine.ReadFile(computerID, path)
	if err != nil {
		return nil, fmt.Errorf("miosatest: ReadFile: %w", err)
	}
	return data, nil
}
