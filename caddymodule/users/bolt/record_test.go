package bolt

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

func sampleUser() users.User {
	return users.User{
		ID:           42,
		Username:     "Zoë",
		Email:        "zoe@example.com",
		PasswordHash: "pbkdf2_sha256$870000$salt$hash=",
		IsActive:     true,
		IsStaff:      true,
		DateJoined:   time.Date(2019, 3, 4, 5, 6, 7, 890, time.UTC),
		LastLogin:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)),
		SessionEpoch: -3,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	cases := []users.User{
		sampleUser(),
		{ID: 1, Username: "a"}, // zero times, empty strings, no flags
		{ID: 1 << 62, Username: "x", IsSuperuser: true, SessionEpoch: 1 << 60,
			DateJoined: time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)}, // earliest non-zero
	}
	for _, want := range cases {
		var got users.User
		if err := decodeRecord(&got, want.ID, encodeRecord(&want)); err != nil {
			t.Fatalf("decode(%+v): %v", want, err)
		}
		// Times come back as stored: UTC, to the microsecond (records
		// written before that rule may hold nanoseconds).
		want.DateJoined, want.LastLogin = users.StoredTime(want.DateJoined), users.StoredTime(want.LastLogin)
		if got != want {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	}
}

func TestRecordCorruptIsErrorNotPanic(t *testing.T) {
	u := sampleUser()
	good := encodeRecord(&u)
	// Every truncation must fail.
	for n := 0; n < len(good); n++ {
		var got users.User
		if err := decodeRecord(&got, 1, good[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want errCorrupt", n, err)
		}
	}
	// Trailing bytes, unknown version and unknown flags must fail.
	for name, b := range map[string][]byte{
		"trailing": append(append([]byte(nil), good...), 'x'),
		"version":  append([]byte{99}, good[1:]...),
		"flags":    append([]byte{recordVersion, 0x80}, good[2:]...),
		"huge len": {recordVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0},
		"bad nsec": {recordVersion, flagDateJoined, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var got users.User
		if err := decodeRecord(&got, 1, b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
	// Random mutations must never panic (they may decode to something).
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), good...)
		for j := rng.IntN(4); j >= 0; j-- {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		var got users.User
		_ = decodeRecord(&got, 1, b)
	}
}
