DROP TABLE poll_marks;
