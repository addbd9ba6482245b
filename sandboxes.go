package miosa

// SandboxesService creates and manages sandboxes.
type SandboxesService service

// Sandbox is a computer created from the sandbox template.
type Sandbox = Computer
