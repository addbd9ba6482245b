// Package connect gives the example programs a client: the real MIOSA API
// when MIOSA_API_KEY is set, otherwise the fake from package miosatest,
// started in-process so the examples run anywhere, offline.
package connect

import (
	"fmt"
	"log"
	"os"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Run calls example with a client, releases what it started, and exits
// non-zero if example fails. It prints one line saying which API the
// example talks to.
func Run(example func(*miosa.Client) error) {
	client, done, err := newClient()
	if err != nil {
		log.Fatal(err)
	}
	err = example(client)
	done()
	if err != nil {
		log.Fatal(err)
	}
}

func newClient() (*miosa.Client, func(), error) {
	if os.Getenv("MIOSA_API_KEY") != "" {
		client, err := miosa.NewClient("")
		if err != nil {
			return nil, nil, err
		}
		fmt.Printf("using the MIOSA API at %s\n", client.BaseURL())
		return client, func() {}, nil
	}
	srv, err := miosatest.Start()
	if err != nil {
		return nil, nil, err
	}
	fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API (nothing leaves this machine)")
	return srv.Client(), func() { _ = srv.Close() }, nil
}
