// gitlab-ci-local (a test tool here, never shipped) evaluates the `=~` of a pipeline's `rules:`
// with `new RE2(pattern, flags)` from the `re2` package, a native module. Its prebuilt binary is
// downloaded from GitHub, which this project's machines cannot reach, so npm compiled RE2 and
// abseil from C++ source on every clean machine: about 140 s of CPU, the longest step of `make
// test`'s setup on 2 cores. Our pipelines (ci/gitlab/.gitlab-ci.yml and the child pipeline `nbops
// plan` writes) compare with `==` and use no `=~`; were one added, JavaScript's RegExp matches
// GitLab's plain patterns as RE2 does (RE2 only refuses more: backreferences, lookaround). So
// `re2` is this: RegExp under RE2's name.
"use strict";

class RE2 extends RegExp {}

module.exports = RE2;
module.exports.default = RE2;
