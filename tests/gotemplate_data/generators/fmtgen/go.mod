module fmtgen
go 1.19
