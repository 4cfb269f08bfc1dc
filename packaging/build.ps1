# Windows: build the one-folder app (dist\lesionviewer\) and run its self-test and start-up
# comparison. Run from any folder:  powershell -ExecutionPolicy Bypass -File packaging\build.ps1
# Extra arguments go to `lesionviewer.exe --self-test` (e.g. --models DIR).
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
$Python = if ($env:PYTHON) { $env:PYTHON } else { ".venv\Scripts\python.exe" }
& $Python -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build\pyinstaller packaging\lesionviewer.spec
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
$App = "dist\lesionviewer\lesionviewer.exe"
$Bytes = (Get-ChildItem -Recurse -File dist\lesionviewer | Measure-Object -Property Length -Sum).Sum
"build: size {0:N0} MB" -f ($Bytes / 1MB)
$Status = 0
# Windows has no Xvfb: the self-test runs once on the desktop and once offscreen.
& $App --self-test @args
if ($LASTEXITCODE -ne 0) { $Status = 1 }
$env:QT_QPA_PLATFORM = "offscreen"
& $App --self-test @args
if ($LASTEXITCODE -ne 0) { $Status = 1 }
Remove-Item Env:QT_QPA_PLATFORM
& $Python packaging\startup_time.py --frozen $App
if ($LASTEXITCODE -ne 0) { $Status = 1 }
exit $Status
