"""The reference backend: speaks Auralis's streaming protocol (as observed on
f33a22e5, see AURALIS.md) with switchable, documented defect injections. It is
the default target and the test bed that proves every detector."""
