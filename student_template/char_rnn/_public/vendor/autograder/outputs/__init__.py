"""What a grade becomes: points per check (score), results.json and the HTML reports
(report), the class summary and grades.csv (summary), and the Gradescope upload (gradescope)."""
