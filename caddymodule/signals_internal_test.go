package caddymodule

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every "while" the code counts a store failure under is among
// storeErrorWhiles, so that its counter is present at zero from the start
// (an alert on rate() sees it before the first failure).
func TestStoreErrorWhilesListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// storeFailure(w, "…", err) and answerErr(w, err, "…", …): the two
	// ways a handler counts one.
	re := regexp.MustCompile(`(?:storeFailure\(w, |answerErr\(w, err, )"([^"]+)"`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			found++
			if while := string(m[1]); !slices.Contains(storeErrorWhiles, while) {
				t.Errorf("%s: store failures while %q are counted but not in storeErrorWhiles", f, while)
			}
		}
	}
	if found < 20 {
		t.Fatalf("only %d store failure sites found: the pattern no longer matches the code", found)
	}
}
