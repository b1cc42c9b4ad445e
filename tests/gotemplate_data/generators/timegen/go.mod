module timegen
go 1.19
