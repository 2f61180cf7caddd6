"""The trust boundary: the worker process that imports student code (worker), how it is
started and contained (isolate, launch, warden, containment, cgroups, seccomp, privileges),
what crosses back as data only (wire), and the stand-ins for logging tools (substitutes)."""
