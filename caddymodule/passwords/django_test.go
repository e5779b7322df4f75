package passwords

import (
	"context"
	"strings"
	"testing"
)

// djangoVectors were produced by Django 3.2.25 (Debian python3-django, with
// python3-argon2 21.1.0 and python3-bcrypt 3.2.2) via make_password, or a
// hasher's encode with lowered cost to keep the tests fast, and each checked
// with Django's check_password before being copied here.
var djangoVectors = []struct {
	name, password, encoded string
}{
	{"pbkdf2_sha256 default iterations", "correct horse battery staple",
		"pbkdf2_sha256$260000$1t9STKJVg2llJRBsq1OyTF$6A1CE7TtLltkj4YEvuigmbTVAgHeplI4So5+JBSToRY="},
	{"pbkdf2_sha256 1000 iterations", "s3cr3t-Pässwörd",
		"pbkdf2_sha256$1000$fZTTvGpgVH7jfV8c2q9xaV$bekmc/orJFl+RpKt/BOB1sv7pB/1ZVz2mPaKUYUveJI="},
	{"pbkdf2_sha1 1000 iterations", "hunter2",
		"pbkdf2_sha1$1000$A5P871HRLBwoxppOfO5b77$s3Gatt4b22UWNC5wRcfIYtoXBzY="},
	{"argon2id Django default params", "correct horse battery staple",
		"argon2$argon2id$v=19$m=102400,t=2,p=8$VmJRTmhxVVJmOGRIQ3M2cUxucWEzNg$QX5Npu530oipqHta2J8rHg"},
	{"argon2id low params", "s3cr3t-Pässwörd",
		"argon2$argon2id$v=19$m=64,t=1,p=2$eFFEY0tZTHFnWVVtRWQ0aEwxSWVaZQ$yntVQ4Jg6q/nVI9hAOi/UA"},
	{"argon2i low params", "hunter2",
		"argon2$argon2i$v=19$m=32,t=2,p=1$bjhFeUM2MnVXNXV0bFp2YnVRQnBKbA$+ncnK1jkmvsPKBDYNoVlgQ"},
	{"bcrypt_sha256 cost 4", "s3cr3t-Pässwörd",
		"bcrypt_sha256$$2b$04$2upHesMy99J1VS4idlWbAOc/27L7i3aFXOm2ZY2eEz7E8Hkt1JpUi"},
	{"bcrypt_sha256 default cost 12", "correct horse battery staple",
		"bcrypt_sha256$$2b$12$k8kdKAffTfwIyOR1z1Bd1uXLFsbFG9S5Fr75im27hkv1huU17UBd."},
	{"bcrypt_sha256 100-byte password", strings.Repeat("x", 100),
		"bcrypt_sha256$$2b$04$gK5kQDAXnLrS1lZLu/Xf/ey/95hWeoXl92UygOU3LvwVCwa2lU0dm"},
	{"bcrypt cost 4", "hunter2",
		"bcrypt$$2b$04$j6cQ/Hn0B23EYA7bHlTpYuO5/MnTtqNSylixafRojTG9ozwIw8SVW"},
	{"bcrypt 100-byte password", strings.Repeat("x", 100),
		"bcrypt$$2b$04$1iw1G3ZpRBgczPf6rzb7PuWL72omEWxoDvWAFHJSeQ5W7xlnV52Iu"},
}

// raceEnabled is set by race_test.go when built with -race.
var raceEnabled bool

func TestDjangoVectors(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	for _, v := range djangoVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			// Django's production costs take up to seconds: check them once,
			// leaving wrong passwords to the cheap vectors. Pure-Go bcrypt at
			// cost 12 takes ~4 s under -race, so there, as in -short mode,
			// only check that it parses (i.e. is within MaxBcryptCost).
			slow := strings.Contains(v.name, "default")
			if slow && (testing.Short() || raceEnabled && strings.HasPrefix(v.encoded, "bcrypt")) {
				if _, err := h.parse(v.encoded); err != nil {
					t.Errorf("parse: %v", err)
				}
				t.Skip("production-cost hash: parsed only")
			}
			ok, rehash, err := h.Verify(ctx, v.password, v.encoded)
			if !ok || !rehash || err != nil {
				t.Errorf("Verify(correct) = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
			if slow {
				return
			}
			ok, rehash, err = h.Verify(ctx, "wrong"+v.password, v.encoded)
			if ok || rehash || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

// Plain bcrypt ignores bytes after the 72nd, as it did in Django (Django's own
// test: check_password("x"*72 + "y", hash of "x"*100) is True);
// bcrypt_sha256 does not.
func TestDjangoBcryptTruncation(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	pw := strings.Repeat("x", 72) + "y"
	for _, v := range djangoVectors {
		if !strings.Contains(v.name, "100-byte") {
			continue
		}
		ok, _, err := h.Verify(ctx, pw, v.encoded)
		want := strings.HasPrefix(v.encoded, "bcrypt$")
		if ok != want || err != nil {
			t.Errorf("%s: Verify(72 x + y) = %v, %v; want %v", v.name, ok, err, want)
		}
	}
}
