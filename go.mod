module github.com/miosa-ai/miosa-go

go 1.25

require github.com/google/uuid v1.6.0

require (
	github.com/stretchr/testify v1.11.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
