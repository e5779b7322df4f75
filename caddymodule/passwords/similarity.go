package passwords

// A port of Django's UserAttributeSimilarityValidator as of Django 3.2.25,
// including the length-ratio shortcut added for CVE-2021-45115 (also in 4.x
// and 5.x).

// maxSimilarity is Django's default max_similarity. A variable, not a
// constant, so that arithmetic on it rounds at float64 precision exactly as
// Python's does rather than being folded with exact constant arithmetic.
var maxSimilarity = 0.7

// similarityAttributes are Django's DEFAULT_USER_ATTRIBUTES in order, with
// the verbose names of django.contrib.auth's User fields used in the message.
var similarityAttributes = []struct{ key, verboseName string }{
	{"username", "username"},
	{"first_name", "first name"},
	{"last_name", "last name"},
	{"email", "email address"},
}

// similarAttribute returns the verbose name of the first attribute the
// password is too similar to, or "" if none.
func similarAttribute(password string, attrs map[string]string) string {
	if len(attrs) == 0 {
		return ""
	}
	pw := []rune(pyLower(password))
	for _, attr := range similarityAttributes {
		value := attrs[attr.key]
		if value == "" {
			continue
		}
		valueLower := pyLower(value)
		// Each \W-separated part, then the whole value.
		for _, part := range append(splitNonWord(valueLower), valueLower) {
			p := []rune(part)
			if exceedsMaximumLengthRatio(len(pw), len(p)) {
				continue
			}
			if quickRatio(pw, p) >= maxSimilarity {
				return attr.verboseName
			}
		}
	}
	return ""
}

// exceedsMaximumLengthRatio is Django's shortcut: when the password is at
// least ten times longer than the value, the ratio cannot reach
// maxSimilarity, so the comparison is skipped.
func exceedsMaximumLengthRatio(pwdLen, valueLen int) bool {
	lengthBoundSimilarity := maxSimilarity / 2 * float64(pwdLen)
	return pwdLen >= 10*valueLen && float64(valueLen) < lengthBoundSimilarity
}

// quickRatio is difflib.SequenceMatcher(a=a, b=b).quick_ratio(): the size of
// the multiset intersection of a and b, doubled, over len(a)+len(b).
func quickRatio(a, b []rune) float64 {
	if len(a)+len(b) == 0 {
		return 1.0 // difflib's _calculate_ratio for two empty sequences
	}
	avail := make(map[rune]int, len(b))
	for _, r := range b {
		avail[r]++
	}
	matches := 0
	for _, r := range a {
		if avail[r] > 0 {
			matches++
		}
		avail[r]--
	}
	return 2.0 * float64(matches) / float64(len(a)+len(b))
}
