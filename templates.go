package miosa

// SandboxTemplatesService defines and builds reusable sandbox images.
type SandboxTemplatesService service
