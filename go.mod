module github.com/miosa-ai/miosa-go

go 1.25.0

require (
	github.com/google/uuid v1.6.0
	github.com/r3labs/sse/v2 v2.10.0
	gopkg.in/cenkalti/backoff.v1 v1.1.0
)

require (
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/net v0.58.0 // indirect
)
