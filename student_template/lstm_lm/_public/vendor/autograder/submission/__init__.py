"""Reading submissions: a file or notebook as Python reads it (source), reduced to its
definitions (reduce), analysed without running it (static, analysis), and its size (size)."""
