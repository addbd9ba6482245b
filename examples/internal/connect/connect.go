// Package connect gives the example programs a client: the real MIOSA API
// when MIOSA_API_KEY is set, otherwise the fake from package miosatest,
// started in-process so the examples run anywhere, offline.
package connect

import (
	"fmt"
	"os"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Client returns a client and a function that releases what it started.
// It prints one line saying which API the example talks to.
func Client(fakeOpts ...miosatest.Option) (*miosa.Client, func(), error) {
	if os.Getenv("MIOSA_API_KEY") != "" {
		client, err := miosa.NewClient("")
		if err != nil {
			return nil, nil, err
		}
		fmt.Printf("using the MIOSA API at %s\n", client.BaseURL())
		return client, func() {}, nil
	}
	srv, err := miosatest.Start(fakeOpts...)
	if err != nil {
		return nil, nil, err
	}
	fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API (nothing leaves this machine)")
	return srv.Client(), func() { _ = srv.Close() }, nil
}
