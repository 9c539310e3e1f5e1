; Inno Setup 6 script: a per-user installer for the PyInstaller folder dist\ftrag-desktop.
;
;   py packaging\build.py             (runs PyInstaller, then this script through ISCC.exe)
; or, by hand, after PyInstaller:
;   "%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe" packaging\windows\ftrag-desktop.iss
;
; Kept in step with packaging/ftrag_desktop.spec and packaging/app_meta.py: the folder and
; executable names, the icon (resources\icons\ftrag.ico) and the version, which is read from
; the version resource the spec writes into ftrag-desktop.exe (so it is always the package's
; ftrag_desktop.__version__).  build.py passes /DAppVersion and /DSourceDir explicitly.
;
; Installs for the current user only (no administrator rights) into
; %LOCALAPPDATA%\Programs\ftrag-desktop, with a Start-menu folder and an uninstaller (also in
; Settings > Apps).  User data (%LOCALAPPDATA%\ftrag-desktop: index, settings, conversations)
; is not touched by install or uninstall.

#define AppName "ftrag-desktop"
#define AppExe "ftrag-desktop.exe"
#define CliExe "ftrag.exe"
#define AppPublisher "ftrag-desktop contributors"
#define AppId "{{CAB7DA30-AE37-5C96-8388-4A5979EC531D}"
#define Repo AddBackslash(SourcePath) + "..\.."

#ifndef SourceDir
  #define SourceDir Repo + "\dist\ftrag-desktop"
#endif
#if !FileExists(SourceDir + "\" + AppExe)
  #error "dist\ftrag-desktop\ftrag-desktop.exe not found: run PyInstaller first (py packaging\build.py)"
#endif
#ifndef AppVersion
  #define AppVersion GetStringFileInfo(SourceDir + "\" + AppExe, "ProductVersion")
#endif

[Setup]
AppId={#AppId}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppPublisher}
AppComments=A private, on-device knowledge assistant
VersionInfoVersion={#AppVersion}
VersionInfoProductName={#AppName}
; Per-user install: no UAC prompt; {autopf} is %LOCALAPPDATA%\Programs for a per-user install.
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
UsePreviousAppDir=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#Repo}\dist
OutputBaseFilename={#AppName}-{#AppVersion}-windows-setup
SetupIconFile={#Repo}\resources\icons\ftrag.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the ftrag command line to my PATH"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; The user's PATH gets the install folder (for ftrag.exe) when the task is chosen; removed on
; uninstall by the code below.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only the install folder: the app never writes there, but remove anything left behind.
Type: filesandordirs; Name: "{app}"

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

procedure RemoveFromPath(Dir: string);
var
  Path: string;
  P: Integer;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
    exit;
  Path := ';' + Path + ';';
  P := Pos(';' + Uppercase(Dir) + ';', Uppercase(Path));
  if P = 0 then
    exit;
  Delete(Path, P, Length(Dir) + 1);
  Path := Copy(Path, 2, Length(Path) - 2);
  RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path);
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
