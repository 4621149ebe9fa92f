package stack

import (
	"strings"
	"testing"
	"time"
)

func TestConditionsValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Conditions
		want string // "" for valid
	}{
		{Conditions{}, ""},
		{Conditions{Loss: 100, Delay: MaxNetDelay, Jitter: time.Second, Reorder: 1, Duplicate: 0.5, Corrupt: 1, Rate: MinNetRate}, ""},
		{Conditions{Loss: 100.5}, "loss 100.5% out of range: want 0%-100%"},
		{Conditions{Corrupt: -1}, "corrupt -1% out of range"},
		{Conditions{Delay: MaxNetDelay + 1}, "delay 10.000000001s out of range: want 0-10s"},
		{Conditions{Rate: 999}, "rate 999bit out of range: want 1kbit-100gbit"},
		{Conditions{Jitter: time.Millisecond}, "jitter needs a delay"},
		{Conditions{Reorder: 5}, "reorder needs a delay"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v.Validate() = %v, want nil", tc.c, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v.Validate() = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestConditionsString(t *testing.T) {
	c := Conditions{Loss: 0.5, Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond, Reorder: 25, Duplicate: 1, Corrupt: 2, Rate: 1_500_000}
	if got, want := c.String(), "loss 0.5% delay 100ms jitter 10ms reorder 25% duplicate 1% corrupt 2% rate 1500kbit"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Conditions{}).String(); got != "clear" {
		t.Errorf("zero String() = %q, want clear", got)
	}
	if ClientToServer.String() != "client->server" || ServerToClient.From() != "server" || ServerToClient.To() != "client" {
		t.Errorf("Direction names wrong")
	}
}
