"""Work spread over processes: the communicator seam, and the recurrent layers' helper process."""
