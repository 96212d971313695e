"""What every action takes and gives: settings and limits, results, output files, streaming."""
