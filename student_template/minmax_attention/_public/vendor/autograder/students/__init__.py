"""The student folder: skeletons from the references (template), what else the folder holds
(public), and the public tests that run on a student's laptop (local, pytest_public)."""
