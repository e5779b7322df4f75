package passwords

import (
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// lowParams keep argon2 fast in tests; only TestDefaultParams uses the real cost.
var lowParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newTestHasher(t testing.TB) *Hasher {
	t.Helper()
	return NewHasher(lowParams, 4)
}

func TestHashVerifyRoundTrip(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	for _, pw := range []string{"correct horse battery staple", "", "ünïcødé ✓", strings.Repeat("x", 1000)} {
		encoded, err := h.Hash(ctx, pw)
		if err != nil {
			t.Fatalf("Hash(%q): %v", pw, err)
		}
		ok, rehash, err := h.Verify(ctx, pw, encoded)
		if err != nil || !ok || rehash {
			t.Errorf("Verify(%q, own hash) = %v, %v, %v; want true, false, nil", pw, ok, rehash, err)
		}
		ok, rehash, err = h.Verify(ctx, pw+"!", encoded)
		if err != nil || ok || rehash {
			t.Errorf("Verify(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
		}
	}
}

func TestHashIsSalted(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	a, _ := h.Hash(ctx, "same")
	b, _ := h.Hash(ctx, "same")
	if a == b {
		t.Fatalf("two hashes of the same password are identical: %s", a)
	}
}

func TestHashPHCFormat(t *testing.T) {
	h := newTestHasher(t)
	encoded, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	// 16-byte salt and 32-byte key in unpadded standard base64.
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(encoded) {
		t.Fatalf("Hash = %q, does not match %s", encoded, re)
	}
	// The key must be plain argon2id over the encoded salt.
	parts := strings.Split(encoded, "$")
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	want := argon2.IDKey([]byte("pw"), salt, 1, 64, 1, 32)
	if string(key) != string(want) {
		t.Fatalf("key is not argon2id(password, salt)")
	}
}

// Known answers produced by argon2-cffi 21.1.0 (argon2.low_level.hash_secret
// with the given salt), so our encoding and derivation are byte-identical to
// the library Django uses.
var argon2CFFIVectors = []struct {
	password, salt, encoded string
	params                  Params
}{
	{"correct horse battery staple", "somesaltsomesalt",
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0",
		Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
	{"correct horse battery staple", "somesaltsomesalt",
		"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ISO7kkvFzh19GM8qB7patN3C3Y9HHsjlVTfEZ9T600Y",
		DefaultParams},
	{"hunter2", "0123456789abcdef",
		"$argon2i$v=19$m=256,t=3,p=4$MDEyMzQ1Njc4OWFiY2RlZg$s7HTnyLgk4uuKM894oFc/w",
		Params{Memory: 256, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 16}},
}

func TestArgon2CFFIVectors(t *testing.T) {
	for _, v := range argon2CFFIVectors {
		a, err := parseArgon2(v.encoded)
		if err != nil {
			t.Fatalf("parse %s: %v", v.encoded, err)
		}
		if a.params != v.params || string(a.salt) != v.salt {
			t.Errorf("parse %s: params %+v salt %q", v.encoded, a.params, a.salt)
		}
		if got := a.String(); got != v.encoded {
			t.Errorf("re-encode = %s, want %s", got, v.encoded)
		}
		b := &argon2Hash{variant: a.variant, params: v.params, salt: []byte(v.salt)}
		b.key = b.derive(v.password)
		if got := b.String(); got != v.encoded {
			t.Errorf("derive = %s, want %s", got, v.encoded)
		}
		ok, rehash, err := NewHasher(v.params, 1).Verify(context.Background(), v.password, v.encoded)
		wantRehash := a.variant != "argon2id"
		if !ok || rehash != wantRehash || err != nil {
			t.Errorf("Verify(%s) = %v, %v, %v; want true, %v, nil", v.encoded, ok, rehash, err, wantRehash)
		}
	}
}

func TestDefaultParams(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(DefaultParams, 0)
	if h.Slots().Limit() != runtime.NumCPU() {
		t.Errorf("maxConcurrent 0: %d slots, want NumCPU %d", h.Slots().Limit(), runtime.NumCPU())
	}
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %s", encoded)
	}
	ok, rehash, err := h.Verify(ctx, "correct horse battery staple", encoded)
	if !ok || rehash || err != nil {
		t.Errorf("Verify = %v, %v, %v", ok, rehash, err)
	}
	if NewHasher(Params{}, 1).Params() != DefaultParams {
		t.Errorf("zero Params do not default to DefaultParams")
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	old := NewHasher(lowParams, 1)
	encoded, err := old.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]Params{
		"same":     lowParams,
		"memory":   {Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"time":     {Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		"threads":  {Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		"salt len": {Memory: 64, Time: 1, Threads: 1, SaltLen: 32, KeyLen: 32},
		"key len":  {Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 64},
	}
	for name, p := range variants {
		h := NewHasher(p, 1)
		ok, rehash, err := h.Verify(ctx, "pw", encoded)
		if !ok || err != nil || rehash != (name != "same") {
			t.Errorf("%s: Verify = %v, %v, %v; want rehash=%v", name, ok, rehash, err, name != "same")
		}
		// needsRehash is only reported on success.
		if ok, rehash, _ := h.Verify(ctx, "wrong", encoded); ok || rehash {
			t.Errorf("%s: wrong password gave ok=%v rehash=%v", name, ok, rehash)
		}
	}
	// argon2i with our exact params still needs a rehash to argon2id.
	a := &argon2Hash{variant: "argon2i", params: lowParams, salt: randomBytes(16)}
	a.key = a.derive("pw")
	if ok, rehash, err := old.Verify(ctx, "pw", a.String()); !ok || !rehash || err != nil {
		t.Errorf("argon2i: Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

// malformedHashes must all fail with an error, cheaply and without panicking.
var malformedHashes = []struct {
	name, encoded string
	want          error
}{
	{"empty", "", ErrUnknownFormat},
	{"garbage", "garbage", ErrUnknownFormat},
	{"unknown django algorithm", "sha1$salt$0123456789abcdef0123456789abcdef01234567", ErrUnknownFormat},
	{"unsalted md5", "md5$$5f4dcc3b5aa765d61d8327deb882cf99", ErrUnknownFormat},
	{"plain bcrypt without django prefix", "$2b$04$j6cQ/Hn0B23EYA7bHlTpYuO5/MnTtqNSylixafRojTG9ozwIw8SVW", ErrUnknownFormat},
	{"unusable", "!Hmu3bOBoOXXLbdxHSu5Cz7mIxlJ8nMYxFZf6Qxbd", ErrUnusablePassword},
	{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrUnknownFormat},
	{"argon2 v=16", "$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrUnknownFormat},
	{"argon2 no version", "$argon2i$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrUnknownFormat},
	{"argon2 variant only", "$argon2id", ErrMalformedHash},
	{"argon2 truncated", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA", ErrMalformedHash},
	{"argon2 extra field", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0$", ErrMalformedHash},
	{"argon2 bad version", "$argon2id$x=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 bad salt base64", "$argon2id$v=19$m=64,t=1,p=1$c29tZX*hbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 bad key base64", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9x*k/0", ErrMalformedHash},
	{"argon2 empty key", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$", ErrMalformedHash},
	{"argon2 short key", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAA", ErrMalformedHash},
	{"argon2 short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 huge salt", "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 4000) + "$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 memory 2 GiB", "$argon2id$v=19$m=2097152,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 memory max uint32", "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 memory overflow", "$argon2id$v=19$m=99999999999999999999,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 memory below 8 per lane", "$argon2id$v=19$m=8,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 time 0", "$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 time huge", "$argon2id$v=19$m=64,t=1000000,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 parallelism 0", "$argon2id$v=19$m=64,t=1,p=0$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 parallelism 256", "$argon2id$v=19$m=4096,t=1,p=256$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 negative", "$argon2id$v=19$m=-64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 plus sign", "$argon2id$v=19$m=+64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 missing param", "$argon2id$v=19$m=64,t=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 duplicate param", "$argon2id$v=19$m=64,m=64,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 unknown param", "$argon2id$v=19$m=64,t=1,x=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"argon2 param without value", "$argon2id$v=19$m,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0", ErrMalformedHash},
	{"django argon2 huge memory", "argon2$argon2id$v=19$m=1073741824,t=2,p=8$VmJRTmhxVVJmOGRIQ3M2cUxucWEzNg$QX5Npu530oipqHta2J8rHg", ErrMalformedHash},
	{"django argon2 truncated", "argon2$argon2id$v=19$m=102400,t=2,p=8$VmJRTmhxVVJmOGRIQ3M2cUxucWEzNg", ErrMalformedHash},
	{"django argon2 empty", "argon2$", ErrUnknownFormat},
	{"pbkdf2 truncated", "pbkdf2_sha256$", ErrMalformedHash},
	{"pbkdf2 missing hash", "pbkdf2_sha256$1000$fZTTvGpgVH7jfV8c2q9xaV", ErrMalformedHash},
	{"pbkdf2 iterations not a number", "pbkdf2_sha256$1e3$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"pbkdf2 zero iterations", "pbkdf2_sha256$0$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"pbkdf2 too many iterations", "pbkdf2_sha256$10000001$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"pbkdf2 iterations overflow", "pbkdf2_sha256$99999999999999999999$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"pbkdf2 empty salt", "pbkdf2_sha256$1000$$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"pbkdf2 bad base64", "pbkdf2_sha256$1000$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYU*eJI=", ErrMalformedHash},
	{"pbkdf2 short key", "pbkdf2_sha256$1000$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt", ErrMalformedHash},
	{"pbkdf2_sha1 with sha256-sized key", "pbkdf2_sha1$1000$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI=", ErrMalformedHash},
	{"bcrypt_sha256 truncated", "bcrypt_sha256$$2b$04$2upHesMy99J1VS4idlWbAOc/27L7i3a", ErrMalformedHash},
	{"bcrypt_sha256 missing empty field", "bcrypt_sha256$2b$04$2upHesMy99J1VS4idlWbAOc/27L7i3aFXOm2ZY2eEz7E8Hkt1JpUi", ErrMalformedHash},
	{"bcrypt_sha256 cost 31", "bcrypt_sha256$$2b$31$2upHesMy99J1VS4idlWbAOc/27L7i3aFXOm2ZY2eEz7E8Hkt1JpUi", ErrMalformedHash},
	{"bcrypt_sha256 cost 17", "bcrypt_sha256$$2b$17$2upHesMy99J1VS4idlWbAOc/27L7i3aFXOm2ZY2eEz7E8Hkt1JpUi", ErrMalformedHash},
	{"bcrypt_sha256 cost not a number", "bcrypt_sha256$$2b$xx$2upHesMy99J1VS4idlWbAOc/27L7i3aFXOm2ZY2eEz7E8Hkt1JpUi", ErrMalformedHash},
	{"bcrypt garbage", "bcrypt$garbage", ErrMalformedHash},
	{"many dollars", strings.Repeat("$", 100000), ErrUnknownFormat},
	{"long garbage", strings.Repeat("pbkdf2_sha256$", 10000), ErrMalformedHash},
}

func TestVerifyMalformed(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	for _, tc := range malformedHashes {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(ctx, "password", tc.encoded)
			if ok || rehash {
				t.Errorf("Verify = %v, %v; want false, false", ok, rehash)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify error = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		p  Params
		ok bool
	}{
		{Params{}, true},
		{DefaultParams, true},
		{lowParams, true},
		{Params{Memory: MaxArgon2Memory + 1}, false},
		{Params{Time: MaxArgon2Time + 1}, false},
		{Params{Memory: 8, Threads: 2}, false},
		{Params{SaltLen: 4}, false},
		{Params{KeyLen: 2}, false},
		{Params{KeyLen: 4096}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewHasher with invalid params did not panic")
		}
	}()
	NewHasher(Params{SaltLen: 1}, 1)
}

// trackPeak makes h record how many computations hold its slots at once;
// each holds them for hold more, to widen the window for overlap. The
// returned counter is the peak since it was last stored.
func trackPeak(h *Hasher, hold time.Duration) *atomic.Int32 {
	var cur, peak atomic.Int32
	h.inSlot = func() {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(hold)
		cur.Add(-1)
	}
	return &peak
}

func TestConcurrencyBound(t *testing.T) {
	const limit = 2
	h := NewHasher(lowParams, limit)
	peak := trackPeak(h, 2*time.Millisecond)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				if _, err := h.Hash(ctx, "pw"); err != nil {
					t.Error(err)
				}
			case 1:
				if ok, _, err := h.Verify(ctx, "pw", encoded); !ok || err != nil {
					t.Error("verify failed", err)
				}
			case 2:
				h.VerifyDummy(ctx, "pw")
			case 3:
				_, _, _ = h.Verify(ctx, "pw", "garbage") // dummy work on error
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d computations ran concurrently, limit %d", p, limit)
	} else if p < limit {
		t.Logf("peak concurrency %d never reached the limit %d", p, limit)
	}
}

func TestContextCancellation(t *testing.T) {
	h := NewHasher(lowParams, 1)
	if err := h.Slots().Acquire(context.Background()); err != nil { // occupy the only slot
		t.Fatal(err)
	}
	defer h.Slots().Release()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash while saturated = %v, want DeadlineExceeded", err)
	}

	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	encoded := argon2CFFIVectors[0].encoded
	if ok, _, err := h.Verify(done, "pw", encoded); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with canceled ctx = %v, %v; want false, Canceled", ok, err)
	}
	h.VerifyDummy(done, "pw") // must return, not block
}

func TestVerifyDummy(t *testing.T) {
	h := newTestHasher(t)
	var calls atomic.Int32
	h.SetObserver(func(d time.Duration) {
		if d <= 0 {
			t.Errorf("observed duration %v", d)
		}
		calls.Add(1)
	})
	h.VerifyDummy(context.Background(), "pw")
	if calls.Load() != 1 {
		t.Errorf("VerifyDummy did %d computations, want 1", calls.Load())
	}
	// The dummy hash is a real one with h's params, so the work is identical.
	if p, err := h.parse(h.dummy); err != nil || !p.current {
		t.Errorf("dummy hash %q: current=%v err=%v", h.dummy, p.current, err)
	}
	if ok, _, err := h.Verify(context.Background(), "pw", h.dummy); ok || err != nil {
		t.Errorf("dummy hash verified: %v, %v", ok, err)
	}
}

func TestObserver(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	var calls atomic.Int32
	h.SetObserver(func(time.Duration) { calls.Add(1) })
	encoded, _ := h.Hash(ctx, "pw")
	_, _, _ = h.Verify(ctx, "pw", encoded)
	_, _, _ = h.Verify(ctx, "pw", "garbage")
	if n := calls.Load(); n != 3 {
		t.Errorf("observer called %d times, want 3", n)
	}
	h.SetObserver(nil)
	_, _ = h.Hash(ctx, "pw")
	if n := calls.Load(); n != 3 {
		t.Errorf("observer called after removal")
	}
}

// FuzzParse checks that no input makes the parser panic. It only parses:
// checking would run whatever cost the input asks for, up to the limits.
func FuzzParse(f *testing.F) {
	for _, tc := range malformedHashes {
		f.Add(tc.encoded)
	}
	for _, v := range djangoVectors {
		f.Add(v.encoded)
	}
	for _, v := range argon2CFFIVectors {
		f.Add(v.encoded)
	}
	h := NewHasher(lowParams, 1)
	f.Fuzz(func(t *testing.T, encoded string) {
		p, err := h.parse(encoded)
		if (p.check == nil) == (err == nil) {
			t.Fatalf("parse(%q) returned check=%v err=%v", encoded, p.check != nil, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrUnusablePassword) {
			t.Fatalf("parse(%q) error %v wraps no sentinel", encoded, err)
		}
	})
}
