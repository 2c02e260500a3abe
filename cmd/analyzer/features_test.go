package main

import (
	"strings"
	"testing"
)

// settingCase is one command line and the setting its error must name ("" when it is fine).
type settingCase struct {
	args []string
	bad  string
}

// checkSettings parses each case's arguments (after the required settings) and checks that
// only the bad ones fail, naming their setting.
func checkSettings(t *testing.T, cases []settingCase) {
	t.Helper()
	for _, tc := range cases {
		err := parse(tc.args...)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%q: error %v, want one naming %s", tc.args, err, tc.bad)
		}
	}
}

// TestVisionFeatureSettings: an unknown feature or a smart crop ratio Vision does not take
// stops the analyzer at start, naming the setting.
func TestVisionFeatureSettings(t *testing.T) {
	checkSettings(t, []settingCase{
		{[]string{"--vision-features", "tags,faces"}, "--vision-features"},
		{[]string{"--vision-features", " , "}, "--vision-features"},
		{[]string{"--vision-features", "tags,caption,objects,read,people,denseCaptions,smartCrops"}, ""},
		{[]string{"--vision-smart-crops", "1,2.5"}, "--vision-smart-crops"},
		{[]string{"--vision-smart-crops", "square"}, "--vision-smart-crops"},
		{[]string{"--vision-smart-crops", "1,0.75"}, ""},
		{[]string{"--thumbnail-decodes", "0"}, "--thumbnail-decodes"},
		{[]string{"--thumbnail-max-pixels", "0"}, "--thumbnail-max-pixels"},
		{[]string{"--thumbnail-prefix", ""}, ""},
	})
}
