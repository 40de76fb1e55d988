"""`tickstream dashboard`: candlesticks from the lake and the bars topics, and the job's health."""
