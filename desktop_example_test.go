package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// An agent sees a desktop computer's screen and drives it. Here the fake
// plays the computer, and reports what was done to it.
func ExampleDesktopService() {
	srv, err := miosatest.Start(miosatest.WithScreenSize(1280, 800))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	computer, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{Name: "agent", TemplateType: "miosa-desktop"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Computers.Destroy(ctx, computer.ID)
	if _, err := client.Computers.WaitForStatus(ctx, computer.ID, miosa.StatusRunning, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}

	// See the screen: the PNG streams into the buffer (a file works as
	// well), checked to be a PNG before its first byte is written.
	var screen bytes.Buffer
	shot, err := client.Desktop.Screenshot(ctx, computer.ID, &screen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the screen is %d×%d pixels\n", shot.Width, shot.Height)
	// Act on it. Each action is sent at most once: an answer lost on
	// the way is an error matching miosa.ErrOutcomeUnknown, never a
	// second click.
	if err := client.Desktop.Click(ctx, computer.ID, image.Pt(640, 400), miosa.ClickParams{}); err != nil {
		log.Fatal(err)
	}
	if err := client.Desktop.Type(ctx, computer.ID, "hello, desktop", miosa.TypeParams{}); err != nil {
		log.Fatal(err)
	}
	if err := client.Desktop.Key(ctx, computer.ID, "Return"); err != nil {
		log.Fatal(err)
	}
	at, err := client.Desktop.Cursor(ctx, computer.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the pointer is at", at)

	desktop, err := srv.Desktop(computer.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("typed %q, then pressed %v\n", desktop.Typed, desktop.Keys)
	// Output:
	// the screen is 1280×800 pixels
	// the pointer is at (640,400)
	// typed "hello, desktop", then pressed [Return]
}

// Launch opens an application's window; FocusWindow brings one to the
// front by the id Windows lists.
func ExampleDesktopService_Launch() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	computer, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{TemplateType: "miosa-desktop"})
	if err != nil {
		log.Fatal(err)
	}

	for _, app := range []string{"xterm", "firefox"} {
		if err := client.Desktop.Launch(ctx, computer.ID, app); err != nil {
			log.Fatal(err)
		}
	}
	windows, err := client.Desktop.Windows(ctx, computer.ID)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range windows {
		if w.App == "xterm" {
			if err := client.Desktop.FocusWindow(ctx, computer.ID, w.ID); err != nil {
				log.Fatal(err)
			}
		}
	}
	windows, err = client.Desktop.Windows(ctx, computer.ID)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range windows {
		fmt.Printf("%s focused=%t\n", w.App, w.Focused)
	}
	// Output:
	// firefox focused=false
	// xterm focused=true
}

// A test proves its agent never clicks twice: the fake acts on the click,
// then drops the answer.
func ExampleDesktopService_Click() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	computer, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{TemplateType: "miosa-desktop"})
	if err != nil {
		log.Fatal(err)
	}

	srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/click", Drop: miosatest.DropAfterAct})
	err = client.Desktop.Click(ctx, computer.ID, image.Pt(10, 10), miosa.ClickParams{Button: miosa.ButtonRight})
	fmt.Println("outcome unknown:", errors.Is(err, miosa.ErrOutcomeUnknown))

	desktop, err := srv.Desktop(computer.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("clicks the computer saw:", len(desktop.Actions))
	// Output:
	// outcome unknown: true
	// clicks the computer saw: 1
}
